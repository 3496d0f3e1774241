#include "proto/event.h"

#include <cctype>

#include "proto/kind_util.h"
#include "proto/resource.h"

namespace skiff::proto {
namespace {

void too_long(FieldErrors& errs, const char* field, const std::string& v, size_t max) {
  if (v.size() > max)
    errs.push_back(
        {ErrorType::kTooLong, field, "may not be more than " + std::to_string(max) + " bytes", ""});
}

// Kubernetes' legacyValidateEvent: old-style events (no eventTime) must name the namespace of
// the object they are about; new-style ones must say who reported them and what happened.
void validate_event(const Event& e, const Event*, FieldErrors& errs) {
  const std::string& ns = e.metadata.namespace_;
  const std::string& ino = e.involved_object.namespace_;
  const std::string ns_path = "involvedObject.namespace";
  if (e.event_time.is_zero()) {
    bool ok = ino.empty() ? (ns.empty() || ns == "default") : ns == ino;
    if (!ok)
      errs.push_back(
          {ErrorType::kInvalid, ns_path, "does not match event.namespace", quote_value(ino)});
  } else {
    if (ino.empty() && ns != "default" && ns != "kube-system")
      errs.push_back(
          {ErrorType::kInvalid, ns_path, "does not match event.namespace", quote_value(ino)});
    if (e.reporting_component.empty())
      errs.push_back({ErrorType::kRequired, "reportingComponent", "", ""});
    else
      add_errors(errs, Path("reportingComponent"), e.reporting_component,
                 is_qualified_name(e.reporting_component));
    if (e.reporting_instance.empty())
      errs.push_back({ErrorType::kRequired, "reportingInstance", "", ""});
    too_long(errs, "reportingInstance", e.reporting_instance, 128);
    if (e.action.empty()) errs.push_back({ErrorType::kRequired, "action", "", ""});
    too_long(errs, "action", e.action, 128);
    if (e.reason.empty()) errs.push_back({ErrorType::kRequired, "reason", "", ""});
    too_long(errs, "reason", e.reason, 128);
    too_long(errs, "message", e.message, 1024);
  }
  if (e.count < 0) non_negative(errs, Path("count"), e.count);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// kubectl's printEvent.
json event_row(const Event& e, Clock::time_point now) {
  std::string first = e.first_timestamp.is_zero() ? since(e.event_time.value, now)
                                                  : since(e.first_timestamp.value, now);
  std::string last = e.last_timestamp.is_zero() ? first : since(e.last_timestamp.value, now);
  int64_t count = e.count;
  if (e.series) {
    last = since(e.series->last_observed_time.value, now);
    count = e.series->count;
  } else if (count == 0) {
    count = 1;
  }
  std::string target = lower(e.involved_object.kind);
  if (!e.involved_object.name.empty()) target += "/" + e.involved_object.name;
  std::string component = e.source.component.empty() ? e.reporting_component : e.source.component;
  std::string instance = e.source.host.empty() ? e.reporting_instance : e.source.host;
  std::string source = instance.empty() ? component : component + ", " + instance;
  return json::array({last, e.type, e.reason, target, e.involved_object.field_path, source,
                      trim(e.message), first, count, e.metadata.name});
}

}  // namespace

ResourceType event_resource() {
  KindSpec<Event> k;
  k.type.version = "v1";
  k.type.kind = "Event";
  k.type.list_kind = "EventList";
  k.type.plural = "events";
  k.type.singular = "event";
  k.type.short_names = {"ev"};
  k.type.has_spec = false;
  Column name = name_column();
  name.priority = 1;
  k.type.columns = {
      column("Last Seen", "string",
             "The time at which the most recent occurrence of this "
             "event was recorded."),
      column("Type", "string", "Type of this event (Normal, Warning)."),
      column("Reason", "string",
             "A short, machine understandable string that gives the "
             "reason for the transition into the object's current status."),
      column("Object", "string", "The object that this event is about."),
      column("Subobject", "string", "The field of the object this event is about.", 1),
      column("Source", "string", "The component reporting this event.", 1),
      column("Message", "string",
             "A human-readable description of the status of this "
             "operation."),
      column("First Seen", "string", "The time at which the event was first recorded.", 1),
      column("Count", "string", "The number of times this event has occurred.", 1),
      name,
  };
  k.validate = validate_event;
  k.row = event_row;
  k.fields = {{"involvedObject.kind", "involvedObject.kind"},
              {"involvedObject.namespace", "involvedObject.namespace"},
              {"involvedObject.name", "involvedObject.name"},
              {"involvedObject.uid", "involvedObject.uid"},
              {"involvedObject.apiVersion", "involvedObject.apiVersion"},
              {"involvedObject.resourceVersion", "involvedObject.resourceVersion"},
              {"involvedObject.fieldPath", "involvedObject.fieldPath"},
              {"reason", "reason"},
              {"reportingComponent", "reportingComponent"},
              {"source", "source.component"},
              {"type", "type"}};
  return make_resource(std::move(k));
}

}  // namespace skiff::proto
