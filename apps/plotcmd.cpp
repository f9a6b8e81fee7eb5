// `nash plot`: CSV columns to a PNG through apps/plot.h.
#include "apps/plotcmd.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/plot.h"
#include "nash/core/error.h"

namespace nash {
namespace apps {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string c; std::getline(ss, c, sep);) out.push_back(c);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

// A cell as a number: the whole text must parse ("nan", "inf" included); anything else is NaN.
double cell_value(const std::string& c) {
  if (c.empty()) return NAN;
  char* end = nullptr;
  const double v = std::strtod(c.c_str(), &end);
  return end && *end == '\0' ? v : NAN;
}

}  // namespace

std::size_t CsvTable::column(const std::string& name, const std::string& what) const {
  std::string names;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
    names += (i ? ", " : "") + columns[i];
  }
  detail::fail("plot: ", what, " has no column '", name, "' (its columns: ", names, ")");
}

CsvTable read_csv_table(const std::string& path) {
  std::ifstream f(path);
  NASH_CHECK(f.good(), "plot: cannot read '", path, "'");
  CsvTable t;
  std::string line;
  NASH_CHECK(static_cast<bool>(std::getline(f, line)) && !line.empty(), "plot: '", path,
             "' is empty (expected a header row of column names)");
  if (line.back() == '\r') line.pop_back();
  t.columns = split(line, ',');
  for (int64_t n = 2; std::getline(f, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line, ',');
    NASH_CHECK(cells.size() == t.columns.size(), "plot: '", path, "' line ", n, " has ", cells.size(),
               " cells, the header ", t.columns.size());
    std::vector<double> row;
    for (const std::string& c : cells) row.push_back(cell_value(c));
    t.rows.push_back(std::move(row));
  }
  return t;
}

int run_plot(int argc, const char* const* argv, int first) {
  cli::Parser p("nash plot",
                "Draws columns of a CSV file with a header row (metrics.csv, fid.csv, a sweep table) into a PNG:\n"
                "--y against --x, one series per --y column, as lines or (--points) markers.\n"
                "  nash plot --csv out/fmnist/metrics.csv --x step --y d_loss,g_loss --out losses.png\n"
                "Exit codes: 0 ok, 1 unreadable CSV, missing column or a PNG that cannot be written, 2 bad flags.");
  p.add_string("csv", "", "the CSV file")
      .add_string("x", "", "the x column")
      .add_string("y", "", "y columns, comma-separated")
      .add_string("out", "plot.png", "the PNG to write")
      .add_string("title", "", "figure title (default: the file name)", true)
      .add_bool("points", false, "markers instead of lines")
      .add_bool("log-x", false, "plot log10 of x (the axis is labelled so)")
      .add_bool("log-y", false, "logarithmic y axis");
  const char* name = "nash plot";
  try {
    p.parse(argc, argv, first);
    if (p.help_requested()) {
      std::cout << p.help();
      return 0;
    }
  } catch (const cli::UsageError& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kUsageExit;
  }
  const std::string csv = p.get_string("csv"), xname = p.get_string("x"), out = p.get_string("out");
  const std::vector<std::string> ys = split(p.get_string("y"), ',');
  if (csv.empty() || xname.empty() || ys.empty() || ys[0].empty()) {
    std::cerr << name << ": --csv, --x and --y are required (see --help)\n";
    return cli::kUsageExit;
  }
  try {
    const CsvTable t = read_csv_table(csv);
    const std::size_t xi = t.column(xname, csv);
    const bool log_x = p.get_bool("log-x");
    plot::Figure f;
    f.title = p.get_string("title").empty() ? csv : p.get_string("title");
    f.xlabel = log_x ? "log10 " + xname : xname;
    f.ylabel = ys.size() == 1 ? ys[0] : "";
    f.log_y = p.get_bool("log-y");
    for (const std::string& y : ys) {
      const std::size_t yi = t.column(y, csv);
      plot::Series s{y, {}, {}, p.get_bool("points")};
      s.point_radius = 4.0;
      for (const auto& row : t.rows) {
        s.x.push_back(log_x ? std::log10(row[xi]) : row[xi]);
        s.y.push_back(row[yi]);
      }
      f.series.push_back(std::move(s));
    }
    plot::save_png(f, out);
    std::cout << "wrote " << out << '\n';
    return 0;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << '\n';
    return cli::kRuntimeExit;
  }
}

}  // namespace apps
}  // namespace nash
