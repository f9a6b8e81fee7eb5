// Line and scatter plots rendered to PNG with nash's own rasteriser and bitmap font (no plotting library needed).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace nash {
namespace plot {

struct Series {
  std::string label;
  std::vector<double> x, y;
  bool points = false;      // scatter markers instead of a polyline
  uint32_t rgb = 0;         // 0: the palette's next colour; else 0xRRGGBB
  double point_radius = 1.5;
};

struct Figure {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  int width = 800, height = 500;
  bool log_y = false;
  bool equal_aspect = false;             // same scale on both axes (scatter of 2-D samples)
  double xmin = NAN, xmax = NAN, ymin = NAN, ymax = NAN;  // NaN: from the data, padded
};

// Renders axes with tick labels, the series, a legend (labels that are non-empty) and the title, and writes a PNG
// through nash::io::write_png. Non-finite points are skipped. Throws nash::Error on an empty figure or bad path.
void save_png(const Figure& fig, const std::string& path);
// Several figures stacked vertically (each fig.width x fig.height) in one PNG.
void save_png(const std::vector<Figure>& panels, const std::string& path);

// The figure's pixels: fig.width x fig.height, 8-bit RGB, row-major (what save_png writes). Series are drawn in
// order (later ones on top). A non-finite point is skipped and breaks a polyline (NaN separates the pieces of one
// series, e.g. several circles); with log_y, points with y <= 0 are treated the same way. equal_aspect widens one
// axis's range (explicit limits included) so a unit spans as many pixels on both; it is ignored with log_y.
// Throws nash::Error on an empty figure (no series, or no point that can be drawn), x and y of different lengths,
// a size outside [120, 8192] x [100, 8192] or limits with min >= max.
std::vector<uint8_t> render(const Figure& fig);

// The colour save_png gives the i-th series that has rgb = 0.
uint32_t palette(std::size_t i);

}  // namespace plot
}  // namespace nash
