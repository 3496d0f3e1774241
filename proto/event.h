// core/v1 Event: something that happened to an object (involvedObject). Validation, Table and
// field-selector fields in event.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "proto/codec.h"
#include "proto/meta.h"
#include "proto/time.h"

namespace skiff::proto {

struct ResourceType;

struct EventSource {
  std::string component, host;
  template <class V>
  void visit(V& v) {
    v("component", component);
    v("host", host);
  }
};

struct EventSeries {
  int32_t count = 0;
  MicroTime last_observed_time;
  template <class V>
  void visit(V& v) {
    v("count", count);
    v("lastObservedTime", last_observed_time);
  }
};

struct Event {
  TypeMeta type_meta;
  ObjectMeta metadata;
  ObjectReference involved_object;
  std::string reason, message;
  EventSource source;
  Time first_timestamp, last_timestamp;
  int32_t count = 0;
  std::string type;  // Normal, Warning
  MicroTime event_time;
  std::optional<EventSeries> series;
  std::string action;
  std::optional<ObjectReference> related;
  std::string reporting_component;  // Go's ReportingController
  std::string reporting_instance;
  template <class V>
  void visit(V& v) {
    type_meta.visit(v);
    v("metadata", metadata);
    v("involvedObject", involved_object, kAlways);
    v("reason", reason);
    v("message", message);
    v("source", source);
    v("firstTimestamp", first_timestamp);
    v("lastTimestamp", last_timestamp);
    v("count", count);
    v("type", type);
    v("eventTime", event_time);
    v("series", series);
    v("action", action);
    v("related", related);
    v("reportingComponent", reporting_component, kAlways);
    v("reportingInstance", reporting_instance, kAlways);
  }
};

ResourceType event_resource();

}  // namespace skiff::proto
