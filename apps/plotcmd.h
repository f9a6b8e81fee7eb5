// `nash plot`: columns of CSV files (metrics.csv, fid.csv, sweep tables) drawn as lines or points into a PNG with
// nash's own plotting (apps/plot.h), so results can be pictured without any plotting package.
#pragma once
#include <string>
#include <vector>

namespace nash {
namespace apps {

// A CSV file with a header row: its column names and the numeric value of every cell (NaN where a cell is not a
// number). Errors name the file and the line.
struct CsvTable {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
  // The index of a column; errors name the file's columns.
  std::size_t column(const std::string& name, const std::string& what) const;
};
CsvTable read_csv_table(const std::string& path);

// The subcommand: exit 0 ok, 1 unreadable input or unwritable output, 2 bad flags.
int run_plot(int argc, const char* const* argv, int first = 2);

}  // namespace apps
}  // namespace nash
