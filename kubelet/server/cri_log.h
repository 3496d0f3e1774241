// Reading container logs in the CRI format the shim writes, the way the kubelet serves them:
//   <RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n
// P marks a partial line (the content continues in the next record), F a full one. Output is
// the content with partial records joined; with timestamps, each message is prefixed with the
// timestamp of its first record, formatted as Go's RFC3339Nano (UTC, trailing zeros dropped).
// Pure text processing, no I/O; thread-compatible.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace skiff::kubelet::logs {

struct CriRecord {
  int64_t time_ns = 0;  // unix nanoseconds
  std::string_view stream;
  bool partial = false;
  std::string_view content;
};
// Parses one record (without its '\n'); nullopt when it is not a CRI record.
std::optional<CriRecord> parse_record(std::string_view line);

// Unix nanoseconds from an RFC3339 timestamp ("2024-05-01T10:00:00.5Z", "...+02:00").
std::optional<int64_t> parse_rfc3339(std::string_view s);
// Go's time.RFC3339Nano in UTC: "2024-05-01T10:00:00.5Z".
std::string format_rfc3339_nano(int64_t unix_ns);

struct LogOptions {
  bool timestamps = false;
  int64_t tail_lines = -1;   // -1: all
  int64_t since_ns = 0;      // unix ns; records older than this are skipped; 0: all
  int64_t limit_bytes = -1;  // -1: no limit
};

// Turns file bytes into what the client gets. Feed it data as it is read (any split), then
// take the output. Lines that are not CRI records are passed through as they are.
class LogFormatter {
 public:
  explicit LogFormatter(LogOptions opts) : opts_(opts) {}

  // Consumes `data`; complete messages are appended to the output (or, while tailing, kept).
  void feed(std::string_view data);
  // Ends tailing: from now on only the last tail_lines messages seen are output, and new ones
  // flow straight to the output. Call once the existing file content has been fed.
  void end_tail();
  // Takes the output produced so far (bounded by limit_bytes overall).
  std::string take();
  // True once limit_bytes have been produced: nothing more will come.
  bool limit_reached() const { return opts_.limit_bytes >= 0 && produced_ >= opts_.limit_bytes; }

 private:
  void line(std::string_view l);
  void emit(std::string msg);

  LogOptions opts_;
  std::string pending_;      // an incomplete line (no '\n' yet)
  std::string partial_;      // content of P records waiting for their F
  int64_t partial_ns_ = -1;  // timestamp of the first of them
  bool tailing_ = true;
  std::deque<std::string> tail_;
  std::string out_;
  int64_t produced_ = 0;
};

}  // namespace skiff::kubelet::logs
