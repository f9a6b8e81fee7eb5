// Tests for the PNG plots: a line and a scatter render at the stated size with their colours; bad figures throw.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/plot.h"
#include "apps/plotcmd.h"
#include "io/png_reader.h"
#include "support.h"

namespace fs = std::filesystem;
using nash::plot::Figure;
using nash::plot::Series;

namespace {

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_plot", name); }

std::size_t count_colour(const std::vector<uint8_t>& rgb, uint32_t c) {
  std::size_t n = 0;
  for (std::size_t i = 0; i + 2 < rgb.size(); i += 3)
    if (((uint32_t(rgb[i]) << 16) | (uint32_t(rgb[i + 1]) << 8) | rgb[i + 2]) == c) ++n;
  return n;
}

Figure line_and_scatter() {
  Figure f;
  f.title = "Losses (test)";
  f.xlabel = "step";
  f.ylabel = "loss";
  Series line{"D loss", {}, {}, false, 0xff0000};
  Series dots{"samples", {}, {}, true, 0x0000ff, 2.5};
  for (int i = 0; i <= 100; ++i) {
    line.x.push_back(i);
    line.y.push_back(std::sin(i * 0.1) + 0.01 * i);
    dots.x.push_back(i);
    dots.y.push_back(std::cos(i * 0.37));
  }
  line.y[50] = NAN;  // skipped, not an error
  f.series = {line, dots};
  return f;
}

}  // namespace

TEST(Plot, LineAndScatterRenderWithTheirColours) {
  Figure f = line_and_scatter();
  std::vector<uint8_t> px = nash::plot::render(f);
  ASSERT_EQ(px.size(), 800u * 500 * 3);
  // A 2-pixel polyline over ~700 pixels, and 101 discs of radius 2.5.
  EXPECT_GT(count_colour(px, 0xff0000), 700u);
  EXPECT_GT(count_colour(px, 0x0000ff), 101u * 9);
  // Text and frame in dark grey, the rest mostly white.
  EXPECT_GT(count_colour(px, 0x202020), 200u);
  EXPECT_GT(count_colour(px, 0xffffff), px.size() / 3 / 2);
  // Drawing is deterministic and the legend is drawn only for labelled series.
  EXPECT_EQ(nash::plot::render(f), px);
  Figure unlabelled = f;
  for (Series& s : unlabelled.series) s.label.clear();
  EXPECT_LT(count_colour(nash::plot::render(unlabelled), 0x202020), count_colour(px, 0x202020));
}

TEST(Plot, SavesAPngOfTheStatedSize) {
  fs::path dir = temp_dir("save");
  Figure f = line_and_scatter();
  f.width = 640;
  f.height = 360;
  const std::string path = (dir / "fig.png").string();
  nash::plot::save_png(f, path);
  nash_test::PngImage img = nash_test::read_png(path);
  EXPECT_EQ(img.width, 640);
  EXPECT_EQ(img.height, 360);
  EXPECT_EQ(img.rgb, nash::plot::render(f));
  EXPECT_GT(count_colour(img.rgb, 0xff0000), 300u);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // Panels stack vertically; the log axis takes positive values.
  Figure g = f;
  g.log_y = true;
  g.series[0].rgb = 0x00aa00;
  for (double& y : g.series[0].y) y = std::exp(y * 3);
  const std::string stacked = (dir / "panels.png").string();
  nash::plot::save_png(std::vector<Figure>{f, g}, stacked);
  img = nash_test::read_png(stacked);
  EXPECT_EQ(img.width, 640);
  EXPECT_EQ(img.height, 720);
  std::vector<uint8_t> top(img.rgb.begin(), img.rgb.begin() + 640 * 360 * 3),
      bottom(img.rgb.begin() + 640 * 360 * 3, img.rgb.end());
  EXPECT_GT(count_colour(top, 0xff0000), 300u);
  EXPECT_EQ(count_colour(top, 0x00aa00), 0u);
  EXPECT_GT(count_colour(bottom, 0x00aa00), 300u);
  fs::remove_all(dir);
}

// equal_aspect: a unit circle's samples span as many pixels across as up and down.
TEST(Plot, EqualAspectKeepsCirclesRound) {
  Figure f;
  f.equal_aspect = true;
  Series s{"", {}, {}, true, 0xff0000, 1.0};
  for (int i = 0; i < 400; ++i) {
    s.x.push_back(std::cos(i * 0.0157));
    s.y.push_back(std::sin(i * 0.0157));
  }
  f.series = {s};
  for (bool equal : {true, false}) {
    f.equal_aspect = equal;
    std::vector<uint8_t> px = nash::plot::render(f);
    int xmin = f.width, xmax = -1, ymin = f.height, ymax = -1;
    for (int y = 0; y < f.height; ++y)
      for (int x = 0; x < f.width; ++x) {
        const uint8_t* p = &px[(static_cast<std::size_t>(y) * f.width + x) * 3];
        if (p[0] == 0xff && p[1] == 0 && p[2] == 0) {
          xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
        }
      }
    const double ratio = double(xmax - xmin) / double(ymax - ymin);
    if (equal) EXPECT_NEAR(ratio, 1.0, 0.03);
    else EXPECT_GT(ratio, 1.3);  // the 800 x 500 frame stretches it
  }
}

TEST(Plot, PaletteAndExplicitLimits) {
  Figure f;
  f.series = {Series{"a", {0, 1}, {0, 1}}, Series{"b", {0, 1}, {1, 0}}};
  std::vector<uint8_t> px = nash::plot::render(f);
  EXPECT_GT(count_colour(px, nash::plot::palette(0)), 100u);
  EXPECT_GT(count_colour(px, nash::plot::palette(1)), 100u);
  EXPECT_NE(nash::plot::palette(0), nash::plot::palette(1));
  // Limits that leave the data outside: nothing of it is drawn (and no legend without labels).
  for (Series& s : f.series) s.label.clear();
  f.xmin = 5;
  f.xmax = 6;
  px = nash::plot::render(f);
  EXPECT_EQ(count_colour(px, nash::plot::palette(0)), 0u);
}

TEST(Plot, BadFiguresThrow) {
  fs::path dir = temp_dir("bad");
  const std::string path = (dir / "x.png").string();
  Figure empty;
  empty.title = "nothing";
  nash_test::expect_error([&] { nash::plot::save_png(empty, path); }, {"nothing", "no series", "x.png"});
  Figure all_nan;
  all_nan.series = {Series{"n", {NAN, 1}, {0, INFINITY}}};
  nash_test::expect_error([&] { nash::plot::render(all_nan); }, {"no point"});
  Figure log_neg;
  log_neg.log_y = true;
  log_neg.series = {Series{"neg", {0, 1}, {-1, 0}}};
  nash_test::expect_error([&] { nash::plot::render(log_neg); }, {"no point", "log"});
  Figure mismatch;
  mismatch.series = {Series{"m", {0, 1, 2}, {0, 1}}};
  nash_test::expect_error([&] { nash::plot::render(mismatch); }, {"'m'", "3 x values", "2 y values"});
  Figure small = line_and_scatter();
  small.width = 10;
  nash_test::expect_error([&] { nash::plot::render(small); }, {"size", "10 x 500"});
  Figure limits = line_and_scatter();
  limits.xmin = 3;
  limits.xmax = 3;
  nash_test::expect_error([&] { nash::plot::render(limits); }, {"min < max"});
  nash_test::expect_error([&] { nash::plot::save_png(std::vector<Figure>{}, path); }, {"no panels", "x.png"});
  nash_test::expect_error([&] { nash::plot::save_png(line_and_scatter(), (dir / "no" / "x.png").string()); },
                          {"write_png", "no/x.png"});
  EXPECT_FALSE(fs::exists(path));
  fs::remove_all(dir);
}

// A non-finite point breaks a polyline: the segments on either side are drawn, the one across it is not.
TEST(Plot, NonFinitePointBreaksTheLine) {
  Figure f;
  f.series = {Series{"", {0, 1, 2, 3}, {0, 0, 0, 0}, false, 0xff0000}};
  const std::size_t whole = count_colour(nash::plot::render(f), 0xff0000);
  f.series[0].x = {0, 1, NAN, 2, 3};
  f.series[0].y = {0, 0, 0, 0, 0};
  const std::size_t broken = count_colour(nash::plot::render(f), 0xff0000);
  EXPECT_GT(whole, 1000u);
  EXPECT_NEAR(double(broken) / double(whole), 2.0 / 3.0, 0.02);
}

TEST(PlotCommand, CsvColumnsToAPngAndErrorsNamed) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("nash_test_plotcmd_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  std::ofstream(d / "m.csv") << "step,d_loss,g_loss\n1,0.5,2\n2,0.4,nan\n3,0.3,1.5\n";
  const nash::apps::CsvTable t = nash::apps::read_csv_table((d / "m.csv").string());
  ASSERT_EQ(t.columns.size(), 3u);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_TRUE(std::isnan(t.rows[1][2]));
  EXPECT_EQ(t.rows[2][1], 0.3);
  auto run = [](std::vector<std::string> args, std::string* err) {
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    testing::internal::CaptureStderr();
    testing::internal::CaptureStdout();
    const int rc = nash::apps::run_plot(static_cast<int>(argv.size()), argv.data(), 2);
    testing::internal::GetCapturedStdout();
    *err = testing::internal::GetCapturedStderr();
    return rc;
  };
  std::string err;
  const std::string png = (d / "p.png").string();
  EXPECT_EQ(run({"nash", "plot", "--csv", (d / "m.csv").string(), "--x", "step", "--y", "d_loss,g_loss", "--out",
                 png, "--points"},
                &err),
            0)
      << err;
  EXPECT_TRUE(fs::exists(png));
  EXPECT_EQ(run({"nash", "plot", "--csv", (d / "m.csv").string(), "--x", "step", "--y", "fid", "--out", png}, &err), 1);
  EXPECT_NE(err.find("no column 'fid'"), std::string::npos) << err;
  EXPECT_NE(err.find("d_loss"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "plot", "--csv", (d / "none.csv").string(), "--x", "a", "--y", "b"}, &err), 1);
  EXPECT_NE(err.find("none.csv"), std::string::npos) << err;
  EXPECT_EQ(run({"nash", "plot", "--x", "a"}, &err), 2);
  std::ofstream(d / "bad.csv") << "a,b\n1,2,3\n";
  nash_test::expect_error([&] { nash::apps::read_csv_table((d / "bad.csv").string()); }, {"bad.csv", "line 2"});
  fs::remove_all(d);
}
