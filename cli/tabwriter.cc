#include "cli/tabwriter.h"

namespace skiff::cli {

int display_width(std::string_view s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

void TabWriter::write(std::string_view text) {
  for (char c : text) {
    if (c == '\n') {
      Line line;
      size_t start = 0;
      for (size_t i = 0; i <= partial_.size(); ++i) {
        if (i == partial_.size() || partial_[i] == '\t') {
          line.push_back(partial_.substr(start, i - start));
          start = i + 1;
        }
      }
      lines_.push_back(std::move(line));
      partial_.clear();
    } else {
      partial_ += c;
    }
  }
}

void TabWriter::write_lines(std::string& out, size_t line0, size_t line1,
                            const std::vector<int>& widths) const {
  for (size_t i = line0; i < line1; ++i) {
    const Line& line = lines_[i];
    for (size_t j = 0; j < line.size(); ++j) {
      out += line[j];
      if (j + 1 < line.size() && j < widths.size()) {
        int pad = widths[j] - display_width(line[j]);
        if (pad > 0) out.append(static_cast<size_t>(pad), ' ');
      }
    }
    out += '\n';
  }
}

// Go's tabwriter.format: recursively finds column blocks, left to right.
void TabWriter::format(std::string& out, size_t line0, size_t line1,
                       std::vector<int>& widths) const {
  size_t column = widths.size();
  for (size_t cur = line0; cur < line1; ++cur) {
    if (column + 1 >= lines_[cur].size()) continue;  // no cell in this column
    write_lines(out, line0, cur, widths);
    line0 = cur;
    int width = min_width_;
    for (; cur < line1; ++cur) {
      const Line& line = lines_[cur];
      if (column + 1 >= line.size()) break;
      width = std::max(width, display_width(line[column]) + padding_);
    }
    widths.push_back(width);
    format(out, line0, cur, widths);
    widths.pop_back();
    line0 = cur;
    if (cur >= line1) return;
  }
  write_lines(out, line0, line1, widths);
}

std::string TabWriter::flush() {
  bool unterminated = !partial_.empty();
  if (unterminated) write("\n");
  std::string out;
  std::vector<int> widths;
  format(out, 0, lines_.size(), widths);
  if (unterminated && !out.empty()) out.pop_back();
  lines_.clear();
  return out;
}

}  // namespace skiff::cli
