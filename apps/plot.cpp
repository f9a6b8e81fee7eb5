// Plot rendering: axis ranges and "nice" ticks, a clipped line and disc rasteriser, bitmap text and the legend.
#include "apps/plot.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "apps/plot_font.h"
#include "nash/core/error.h"
#include "nash/io/png.h"

namespace nash {
namespace plot {

namespace {

constexpr uint32_t kWhite = 0xffffff, kFrame = 0x404040, kGrid = 0xe8e8e8, kText = 0x202020;
constexpr int kMinW = 120, kMinH = 100, kMaxSide = 8192;

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<std::size_t>(w_) * h_ * 3, 0xff) {}
  void set(int x, int y, uint32_t c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &px[(static_cast<std::size_t>(y) * w + x) * 3];
    p[0] = static_cast<uint8_t>(c >> 16);
    p[1] = static_cast<uint8_t>(c >> 8);
    p[2] = static_cast<uint8_t>(c);
  }
  void fill(int x0, int y0, int x1, int y1, uint32_t c) {  // inclusive corners
    for (int y = std::max(0, y0); y <= std::min(h - 1, y1); ++y)
      for (int x = std::max(0, x0); x <= std::min(w - 1, x1); ++x) set(x, y, c);
  }
};

// The drawable area of the axes, in pixels (inclusive).
struct Rect {
  int x0, y0, x1, y1;
  bool contains(int x, int y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
};

// ---- text ---------------------------------------------------------------------------------------------------

// Glyph indices of a UTF-8 string: ASCII 32..126 as themselves, any other character (one per code point) as '?'.
std::vector<int> glyphs(const std::string& s) {
  std::vector<int> g;
  for (unsigned char c : s) {
    if (c >= 0x80 && c < 0xc0) continue;  // a continuation byte: its character already has its '?'
    g.push_back(c >= 32 && c <= 126 ? c - 32 : '?' - 32);
  }
  return g;
}

int text_width(const std::string& s, int scale) {
  const int n = static_cast<int>(glyphs(s).size());
  return n == 0 ? 0 : (n * (kGlyphW + 1) - 1) * scale;
}
int text_height(int scale) { return kGlyphH * scale; }

// Horizontal text with its top-left corner at (x, y).
void draw_text(Canvas& cv, int x, int y, const std::string& s, uint32_t c, int scale = 1) {
  for (int g : glyphs(s)) {
    for (int r = 0; r < kGlyphH; ++r)
      for (int col = 0; col < kGlyphW; ++col)
        if (kFont[g][r] & (0x10 >> col)) cv.fill(x + col * scale, y + r * scale, x + (col + 1) * scale - 1,
                                                 y + (r + 1) * scale - 1, c);
    x += (kGlyphW + 1) * scale;
  }
}

// Text reading upwards (turned 90 degrees counter-clockwise), its bounding box's bottom-left corner at (x, y).
void draw_text_up(Canvas& cv, int x, int y, const std::string& s, uint32_t c) {
  for (int g : glyphs(s)) {
    for (int r = 0; r < kGlyphH; ++r)
      for (int col = 0; col < kGlyphW; ++col)
        if (kFont[g][r] & (0x10 >> col)) cv.set(x + r, y - col, c);
    y -= kGlyphW + 1;
  }
}

// ---- axes ---------------------------------------------------------------------------------------------------

// One axis: the data range in plotted units (log10 of the value on a log axis) and its pixel span.
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  int p_lo = 0, p_hi = 1;  // pixels of lo and hi (p_hi < p_lo for the y axis, which grows upwards)
  double unit(double v) const { return log ? std::log10(v) : v; }
  bool usable(double v) const { return std::isfinite(v) && (!log || v > 0); }
  double px(double v) const { return p_lo + (unit(v) - lo) / (hi - lo) * (p_hi - p_lo); }
};

struct Tick {
  double value;  // plotted units
  std::string label;
};

std::string format_tick(double v, double step) {
  char buf[32];
  if (v == 0 || std::fabs(v) < step * 1e-6) return "0";  // no "-0" or "1e-17" where zero is meant
  const double a = std::fabs(v);
  if (a >= 1e5 || a < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 10), v);
  }
  return buf;
}

// Ticks at multiples of 1, 2 or 5 times a power of ten, about `target` of them across [lo, hi].
std::vector<Tick> linear_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  std::vector<Tick> t;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && t.size() < 100; k += 1)
    t.push_back({k * step, format_tick(k * step, step)});
  return t;
}

std::string format_power(double v) {
  char buf[32];
  const double k = std::log10(v);
  if (std::fabs(k - std::round(k)) < 1e-9 && (k < -3 || k > 4))
    std::snprintf(buf, sizeof buf, "1e%d", static_cast<int>(std::round(k)));
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// [lo, hi] in log10 units: powers of ten (every few decades when there are many), else 1-2-5 steps, else linear.
std::vector<Tick> log_ticks(double lo, double hi, int target) {
  std::vector<Tick> t;
  const int kmin = static_cast<int>(std::ceil(lo - 1e-9)), kmax = static_cast<int>(std::floor(hi + 1e-9));
  if (kmax - kmin + 1 >= 2) {
    const int stride = std::max(1, (kmax - kmin + target) / std::max(1, target));
    for (int k = kmin; k <= kmax; k += stride) t.push_back({static_cast<double>(k), format_power(std::pow(10.0, k))});
    return t;
  }
  for (int k = static_cast<int>(std::floor(lo)); k <= static_cast<int>(std::ceil(hi)); ++k)
    for (double m : {1.0, 2.0, 5.0}) {
      const double u = k + std::log10(m);
      if (u >= lo - 1e-9 && u <= hi + 1e-9) t.push_back({u, format_power(m * std::pow(10.0, k))});
    }
  if (t.size() >= 3) return t;
  t.clear();
  for (const Tick& lt : linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), target))
    if (lt.value > 0) t.push_back({std::log10(lt.value), lt.label});
  return t;
}

// The data's range in plotted units, padded by 5% (a single value gets a unit-sized range around it).
void data_range(const Figure& fig, bool y, const Axis& ax, double& lo, double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (const Series& s : fig.series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (fig.log_y && !(s.y[i] > 0))) continue;
      const double v = y ? ax.unit(s.y[i]) : s.x[i];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (!(lo <= hi)) return;  // no point: the caller reports the empty figure
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(lo))) {
    const double half = ax.log ? 0.5 : std::max(0.5, std::fabs(lo) * 0.1);
    lo -= half;
    hi += half;
  } else {
    const double pad = 0.05 * (hi - lo);
    lo -= pad;
    hi += pad;
  }
}

// ---- shapes ---------------------------------------------------------------------------------------------------

// Liang-Barsky: clips the segment to r (in double pixel coordinates); false when nothing is left.
bool clip(double& x0, double& y0, double& x1, double& y1, const Rect& r) {
  double t0 = 0, t1 = 1;
  const double dx = x1 - x0, dy = y1 - y0;
  const double p[4] = {-dx, dx, -dy, dy}, q[4] = {x0 - r.x0, r.x1 - x0, y0 - r.y0, r.y1 - y0};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
      continue;
    }
    const double t = q[i] / p[i];
    if (p[i] < 0) t0 = std::max(t0, t);
    else t1 = std::min(t1, t);
  }
  if (t0 > t1) return false;
  const double ax = x0, ay = y0;
  x0 = ax + t0 * dx;
  y0 = ay + t0 * dy;
  x1 = ax + t1 * dx;
  y1 = ay + t1 * dy;
  return true;
}

// A 2-pixel-wide segment (Bresenham, thickened across its major direction), clipped to r.
void draw_line(Canvas& cv, double fx0, double fy0, double fx1, double fy1, const Rect& r, uint32_t c) {
  if (!clip(fx0, fy0, fx1, fy1, r)) return;
  int x0 = static_cast<int>(std::lround(fx0)), y0 = static_cast<int>(std::lround(fy0));
  const int x1 = static_cast<int>(std::lround(fx1)), y1 = static_cast<int>(std::lround(fy1));
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  const bool steep = -dy > dx;
  int err = dx + dy;
  for (;;) {
    if (r.contains(x0, y0)) cv.set(x0, y0, c);
    const int tx = steep ? x0 + 1 : x0, ty = steep ? y0 : y0 + 1;
    if (r.contains(tx, ty)) cv.set(tx, ty, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

void draw_disc(Canvas& cv, double cx, double cy, double radius, const Rect& r, uint32_t c) {
  const int ix = static_cast<int>(std::lround(cx)), iy = static_cast<int>(std::lround(cy));
  const int k = static_cast<int>(std::ceil(radius));
  const double r2 = radius * radius + 0.25;  // a radius below 0.5 still draws its centre pixel
  for (int dy = -k; dy <= k; ++dy)
    for (int dx = -k; dx <= k; ++dx)
      if (dx * dx + dy * dy <= r2 && r.contains(ix + dx, iy + dy)) cv.set(ix + dx, iy + dy, c);
}

// ---- the figure -------------------------------------------------------------------------------------------------

void check_figure(const Figure& fig) {
  const std::string name = "plot: figure '" + fig.title + "'";
  NASH_CHECK(fig.width >= kMinW && fig.width <= kMaxSide && fig.height >= kMinH && fig.height <= kMaxSide, name,
             ": size must be within [", kMinW, ", ", kMaxSide, "] x [", kMinH, ", ", kMaxSide, "], got ", fig.width,
             " x ", fig.height);
  NASH_CHECK(!fig.series.empty(), name, " has no series (an empty figure)");
  for (const Series& s : fig.series) {
    NASH_CHECK(s.x.size() == s.y.size(), name, ": series '", s.label, "' has ", s.x.size(), " x values and ",
               s.y.size(), " y values");
    NASH_CHECK(std::isfinite(s.point_radius) && s.point_radius >= 0 && s.point_radius <= 100, name, ": series '",
               s.label, "' has point_radius ", s.point_radius, ", expected one in [0, 100]");
  }
  for (double v : {fig.xmin, fig.xmax, fig.ymin, fig.ymax})
    NASH_CHECK(std::isnan(v) || std::isfinite(v), name, ": axis limits must be finite or NaN, got ", v);
  NASH_CHECK(!fig.log_y || std::isnan(fig.ymin) || fig.ymin > 0, name, ": a log y axis needs ymin > 0, got ",
             fig.ymin);
  NASH_CHECK(!fig.log_y || std::isnan(fig.ymax) || fig.ymax > 0, name, ": a log y axis needs ymax > 0, got ",
             fig.ymax);
}

}  // namespace

uint32_t palette(std::size_t i) {
  static const uint32_t colours[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
  return colours[i % (sizeof colours / sizeof colours[0])];
}

std::vector<uint8_t> render(const Figure& fig) {
  check_figure(fig);
  const std::string name = "plot: figure '" + fig.title + "'";
  Canvas cv(fig.width, fig.height);
  Axis ax, ay;
  ay.log = fig.log_y;

  double xlo, xhi, ylo, yhi;
  data_range(fig, false, ax, xlo, xhi);
  data_range(fig, true, ay, ylo, yhi);
  NASH_CHECK(xlo <= xhi && ylo <= yhi, name, " has no point that can be drawn (all are non-finite",
             fig.log_y ? " or <= 0 on the log axis)" : ")");
  if (!std::isnan(fig.xmin)) xlo = fig.xmin;
  if (!std::isnan(fig.xmax)) xhi = fig.xmax;
  if (!std::isnan(fig.ymin)) ylo = ay.unit(fig.ymin);
  if (!std::isnan(fig.ymax)) yhi = ay.unit(fig.ymax);
  NASH_CHECK(xlo < xhi && ylo < yhi, name, ": axis limits need min < max, got x [", xlo, ", ", xhi, "], y [",
             fig.log_y ? std::pow(10.0, ylo) : ylo, ", ", fig.log_y ? std::pow(10.0, yhi) : yhi, "]");

  // Layout: the title above, tick labels and axis labels below and to the left of the plot area.
  const int title_scale = text_width(fig.title, 2) <= fig.width - 20 ? 2 : 1;
  const int th = text_height(1);
  const int top = fig.title.empty() ? 12 : 10 + text_height(title_scale) + 10;
  const int bottom = 6 + th + 6 + (fig.xlabel.empty() ? 0 : th + 8) + 4;
  const int plot_h = fig.height - top - bottom;
  ay.p_lo = fig.height - bottom - 1;
  ay.p_hi = top;
  // y ticks first: their labels' width sets the left margin, and with it the width the x ticks get.
  auto y_ticks = [&](double lo, double hi) {
    return ay.log ? log_ticks(lo, hi, std::max(2, plot_h / 45)) : linear_ticks(lo, hi, std::max(2, plot_h / 45));
  };
  auto left_margin = [&](const std::vector<Tick>& ticks) {
    int w = 0;
    for (const Tick& t : ticks) w = std::max(w, text_width(t.label, 1));
    return 8 + (fig.ylabel.empty() ? 0 : th + 8) + w + 8;
  };
  std::vector<Tick> yt = y_ticks(ylo, yhi);
  int left = left_margin(yt);
  const int right = 20;
  int plot_w = fig.width - left - right;
  if (fig.equal_aspect && !fig.log_y) {
    // One unit spans the same pixels on both axes: widen the axis that would be stretched. The y labels may then
    // change width, so settle the left margin once more (a second pass changes it by a few pixels at most).
    for (int pass = 0; pass < 2; ++pass) {
      const double upp = std::max((xhi - xlo) / plot_w, (yhi - ylo) / plot_h);
      const double cx = 0.5 * (xlo + xhi), cy = 0.5 * (ylo + yhi);
      xlo = cx - 0.5 * upp * plot_w;
      xhi = cx + 0.5 * upp * plot_w;
      ylo = cy - 0.5 * upp * plot_h;
      yhi = cy + 0.5 * upp * plot_h;
      yt = y_ticks(ylo, yhi);
      left = left_margin(yt);
      plot_w = fig.width - left - right;
    }
  }
  NASH_CHECK(plot_w >= 20 && plot_h >= 20, name, ": ", fig.width, " x ", fig.height,
             " leaves no room for the plot area after the labels");
  ax.lo = xlo;
  ax.hi = xhi;
  ay.lo = ylo;
  ay.hi = yhi;
  ax.p_lo = left;
  ax.p_hi = left + plot_w - 1;
  const Rect area{left, top, left + plot_w - 1, top + plot_h - 1};
  const std::vector<Tick> xt = linear_ticks(xlo, xhi, std::max(2, plot_w / 90));

  // Grid, ticks and their labels.
  for (const Tick& t : xt) {
    const int x = static_cast<int>(std::lround(left + (t.value - xlo) / (xhi - xlo) * (plot_w - 1)));
    if (x < area.x0 || x > area.x1) continue;
    cv.fill(x, area.y0, x, area.y1, kGrid);
    cv.fill(x, area.y1 + 1, x, area.y1 + 4, kFrame);
    const int w = text_width(t.label, 1);
    const int lx = std::clamp(x - w / 2, 0, fig.width - w);
    draw_text(cv, lx, area.y1 + 7, t.label, kText);
  }
  for (const Tick& t : yt) {
    const int y = static_cast<int>(std::lround(ay.p_lo + (t.value - ylo) / (yhi - ylo) * (ay.p_hi - ay.p_lo)));
    if (y < area.y0 || y > area.y1) continue;
    cv.fill(area.x0, y, area.x1, y, kGrid);
    cv.fill(area.x0 - 4, y, area.x0 - 1, y, kFrame);
    draw_text(cv, area.x0 - 7 - text_width(t.label, 1), y - th / 2, t.label, kText);
  }

  // The series, clipped to the plot area.
  std::size_t next_colour = 0;
  std::vector<uint32_t> colours;
  for (const Series& s : fig.series) {
    const uint32_t c = s.rgb ? (s.rgb & 0xffffff) : palette(next_colour++);
    colours.push_back(c);
    bool have_prev = false;
    double px0 = 0, py0 = 0;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!ax.usable(s.x[i]) || !ay.usable(s.y[i])) {
        have_prev = false;  // a gap in a polyline, as NaN separates the pieces of one series
        continue;
      }
      const double px = ax.px(s.x[i]), py = ay.px(s.y[i]);
      if (s.points) draw_disc(cv, px, py, s.point_radius, area, c);
      else if (have_prev) draw_line(cv, px0, py0, px, py, area, c);
      else if (area.contains(static_cast<int>(std::lround(px)), static_cast<int>(std::lround(py))))
        cv.set(static_cast<int>(std::lround(px)), static_cast<int>(std::lround(py)), c);  // a lone first point
      px0 = px;
      py0 = py;
      have_prev = true;
    }
  }

  // The frame on top of the data.
  cv.fill(area.x0 - 1, area.y0 - 1, area.x1 + 1, area.y0 - 1, kFrame);
  cv.fill(area.x0 - 1, area.y1 + 1, area.x1 + 1, area.y1 + 1, kFrame);
  cv.fill(area.x0 - 1, area.y0 - 1, area.x0 - 1, area.y1 + 1, kFrame);
  cv.fill(area.x1 + 1, area.y0 - 1, area.x1 + 1, area.y1 + 1, kFrame);

  // Legend: the top-right corner of the plot area, one row per labelled series.
  std::vector<std::size_t> shown;
  int lw = 0;
  for (std::size_t i = 0; i < fig.series.size(); ++i)
    if (!fig.series[i].label.empty()) {
      shown.push_back(i);
      lw = std::max(lw, text_width(fig.series[i].label, 1));
    }
  if (!shown.empty()) {
    const int row = th + 6, bw = lw + 36, bh = static_cast<int>(shown.size()) * row + 8;
    const int bx = std::max(area.x0 + 2, area.x1 - 8 - bw), by = area.y0 + 8;
    cv.fill(bx, by, bx + bw, by + bh, kWhite);
    cv.fill(bx, by, bx + bw, by, 0xb0b0b0);
    cv.fill(bx, by + bh, bx + bw, by + bh, 0xb0b0b0);
    cv.fill(bx, by, bx, by + bh, 0xb0b0b0);
    cv.fill(bx + bw, by, bx + bw, by + bh, 0xb0b0b0);
    for (std::size_t k = 0; k < shown.size(); ++k) {
      const Series& s = fig.series[shown[k]];
      const int cy = by + 4 + static_cast<int>(k) * row + row / 2;
      const uint32_t c = colours[shown[k]];
      if (s.points) {
        const Rect all{0, 0, fig.width - 1, fig.height - 1};
        draw_disc(cv, bx + 14, cy, std::clamp(s.point_radius, 2.0, 5.0), all, c);
      } else {
        cv.fill(bx + 6, cy - 1, bx + 22, cy, c);
      }
      draw_text(cv, bx + 28, cy - th / 2, s.label, kText);
    }
  }

  // Title and axis labels.
  if (!fig.title.empty()) {
    const int w = text_width(fig.title, title_scale);
    draw_text(cv, std::max(2, left + plot_w / 2 - w / 2), 10, fig.title, kText, title_scale);
  }
  if (!fig.xlabel.empty()) {
    const int w = text_width(fig.xlabel, 1);
    draw_text(cv, std::max(2, left + plot_w / 2 - w / 2), fig.height - 4 - th - 4, fig.xlabel, kText);
  }
  if (!fig.ylabel.empty()) {
    const int w = text_width(fig.ylabel, 1);
    draw_text_up(cv, 8, std::min(fig.height - 2, top + plot_h / 2 + w / 2), fig.ylabel, kText);
  }
  return std::move(cv.px);
}

void save_png(const Figure& fig, const std::string& path) {
  std::vector<uint8_t> rgb;
  try {
    rgb = render(fig);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (writing '" + path + "')");
  }
  io::write_png(path, fig.width, fig.height, rgb);
}

void save_png(const std::vector<Figure>& panels, const std::string& path) {
  NASH_CHECK(!panels.empty(), "plot: no panels to write to '", path, "'");
  int width = 0, height = 0;
  for (const Figure& f : panels) {
    width = std::max(width, f.width);
    height += f.height;
  }
  NASH_CHECK(height <= kMaxSide, "plot: ", panels.size(), " panels stack to ", height, " pixels, more than ",
             kMaxSide, " (writing '", path, "')");
  std::vector<uint8_t> rgb(static_cast<std::size_t>(width) * height * 3, 0xff);
  int y0 = 0;
  for (const Figure& f : panels) {
    std::vector<uint8_t> p;
    try {
      p = render(f);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (writing '" + path + "')");
    }
    for (int y = 0; y < f.height; ++y)
      std::copy(p.begin() + static_cast<std::ptrdiff_t>(y) * f.width * 3,
                p.begin() + static_cast<std::ptrdiff_t>(y + 1) * f.width * 3,
                rgb.begin() + (static_cast<std::ptrdiff_t>(y0 + y) * width) * 3);
    y0 += f.height;
  }
  io::write_png(path, width, height, rgb);
}

}  // namespace plot
}  // namespace nash
