// TabWriter: column alignment with the semantics of Go's text/tabwriter (AlignLeft, space
// padding), which is what kubectl's tables and describe output go through. Cells end with
// '\t'; the text after a line's last tab is not a cell and is never padded. A column block is a
// run of consecutive lines that have a cell in that column; its width is the widest cell plus
// `padding`, at least `min_width`. Widths count UTF-8 code points. Not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace skiff::cli {

class TabWriter {
 public:
  TabWriter(int min_width, int padding) : min_width_(min_width), padding_(padding) {}
  // Appends text; lines end at '\n'.
  void write(std::string_view text);
  // Formats everything written so far (an unterminated last line included) and resets.
  std::string flush();

 private:
  using Line = std::vector<std::string>;  // cells; the last one is the untabbed tail
  void format(std::string& out, size_t line0, size_t line1, std::vector<int>& widths) const;
  void write_lines(std::string& out, size_t line0, size_t line1,
                   const std::vector<int>& widths) const;
  int min_width_;
  int padding_;
  std::vector<Line> lines_;
  std::string partial_;
};

// UTF-8 code points in s (what a terminal column count approximates).
int display_width(std::string_view s);

}  // namespace skiff::cli
