// Tests for the nash flag parser (every kind of bad value is a UsageError naming the flag) and the progress bar.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/progress.h"

using nash::cli::Parser;
using nash::cli::ProgressBar;
using nash::cli::UsageError;

namespace {

Parser make_parser() {
  Parser p("nash test", "A parser for tests.");
  p.add_int("steps", 100, "training steps", 1, 1000000)
      .add_int("seed", 0, "random seed", 0)
      .add_double("lr", 1e-3, "learning rate", 0.0, 1.0, true)
      .add_double("weight", 0.5, "a weight in [0, 1]", 0.0, 1.0)
      .add_string("out", "./out", "output directory")
      .add_bool("quiet", false, "say nothing");
  return p;
}

// Parses args and returns the UsageError message ("" when parsing succeeded).
std::string parse_error(const std::vector<std::string>& args) {
  Parser p = make_parser();
  try {
    p.parse(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::vector<std::string>& args, const std::string& flag, const std::string& value) {
  std::string msg = parse_error(args);
  SCOPED_TRACE("args: " + args[0] + (args.size() > 1 ? " " + args[1] : ""));
  ASSERT_FALSE(msg.empty()) << "expected a UsageError";
  EXPECT_NE(msg.find(flag), std::string::npos) << msg;
  if (!value.empty()) EXPECT_NE(msg.find(value), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "message must be one line: " << msg;
}

}  // namespace

TEST(Cli, DefaultsWhenNothingGiven) {
  Parser p = make_parser();
  p.parse(std::vector<std::string>{});
  EXPECT_EQ(p.get_int("steps"), 100);
  EXPECT_DOUBLE_EQ(p.get_double("lr"), 1e-3);
  EXPECT_EQ(p.get_string("out"), "./out");
  EXPECT_FALSE(p.get_bool("quiet"));
  EXPECT_FALSE(p.is_set("steps"));
  EXPECT_FALSE(p.help_requested());
}

TEST(Cli, SpaceAndEqualsForms) {
  Parser p = make_parser();
  p.parse(std::vector<std::string>{"--steps", "250", "--lr=2.5e-4", "--out", "/tmp/x y", "--weight=1", "--quiet",
                                   "--seed=-0"});
  EXPECT_EQ(p.get_int("steps"), 250);
  EXPECT_DOUBLE_EQ(p.get_double("lr"), 2.5e-4);
  EXPECT_EQ(p.get_string("out"), "/tmp/x y");
  EXPECT_DOUBLE_EQ(p.get_double("weight"), 1.0);
  EXPECT_TRUE(p.get_bool("quiet"));
  EXPECT_EQ(p.get_int("seed"), 0);
  EXPECT_TRUE(p.is_set("steps"));
  EXPECT_TRUE(p.is_set("seed"));
  EXPECT_TRUE(p.is_set("lr"));
}

TEST(Cli, BoolValues) {
  for (const char* v : {"true", "1", "yes", "ON"}) {
    Parser p = make_parser();
    p.parse(std::vector<std::string>{std::string("--quiet=") + v});
    EXPECT_TRUE(p.get_bool("quiet")) << v;
  }
  for (const char* v : {"false", "0", "no", "Off"}) {
    Parser p = make_parser();
    p.parse(std::vector<std::string>{std::string("--quiet=") + v});
    EXPECT_FALSE(p.get_bool("quiet")) << v;
  }
  expect_error({"--quiet=maybe"}, "--quiet", "maybe");
}

TEST(Cli, UnknownFlagAndStrayArgument) {
  expect_error({"--stepz", "5"}, "--stepz", "");
  expect_error({"--stepz=5"}, "--stepz", "");
  expect_error({"steps"}, "steps", "");
  expect_error({"-s"}, "-s", "");
  expect_error({"--steps", "5", "extra"}, "extra", "");
}

TEST(Cli, MissingValue) {
  expect_error({"--steps"}, "--steps", "missing value");
  expect_error({"--out"}, "--out", "missing value");
  expect_error({"--steps", "--lr", "0.1"}, "--steps", "missing value");
  expect_error({"--out="}, "--out", "empty");
  expect_error({"--steps="}, "--steps", "empty");
}

TEST(Cli, NonNumeric) {
  expect_error({"--steps", "abc"}, "--steps", "abc");
  expect_error({"--steps", "12abc"}, "--steps", "12abc");
  expect_error({"--steps", "1.5"}, "--steps", "1.5");
  expect_error({"--steps", "1e3"}, "--steps", "1e3");
  expect_error({"--steps", " 12"}, "--steps", "12");
  expect_error({"--lr", "fast"}, "--lr", "fast");
  expect_error({"--lr", "0.1x"}, "--lr", "0.1x");
  expect_error({"--lr", "0x"}, "--lr", "0x");
}

TEST(Cli, NanAndInfinity) {
  for (const char* v : {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e999"}) {
    SCOPED_TRACE(v);
    expect_error({"--weight", v}, "--weight", v);
  }
}

TEST(Cli, RangeChecks) {
  expect_error({"--steps", "0"}, "--steps", "0");
  expect_error({"--steps", "-5"}, "--steps", "-5");
  expect_error({"--steps", "1000001"}, "--steps", "1000001");
  expect_error({"--steps", "99999999999999999999999"}, "--steps", "99999999999999999999999");
  expect_error({"--seed", "-1"}, "--seed", "-1");
  expect_error({"--lr", "0"}, "--lr", "0");
  expect_error({"--lr", "-1e-3"}, "--lr", "-1e-3");
  expect_error({"--lr", "2"}, "--lr", "2");
  expect_error({"--weight", "-0.01"}, "--weight", "-0.01");
  // Inclusive bounds are accepted.
  EXPECT_EQ(parse_error({"--steps", "1000000", "--weight", "0", "--lr", "1"}), "");
}

TEST(Cli, RepeatedFlag) { expect_error({"--steps", "5", "--steps=6"}, "--steps", "more than once"); }

TEST(Cli, LongAndControlValuesAreQuotedOnOneLine) {
  std::string msg = parse_error({"--steps", "12\n34"});
  EXPECT_NE(msg.find("--steps"), std::string::npos);
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  msg = parse_error({"--steps", std::string(500, '9') + "x"});
  EXPECT_LT(msg.size(), 200u) << msg;
}

TEST(Cli, HelpListsEveryFlagWithDefault) {
  Parser p = make_parser();
  p.parse(std::vector<std::string>{"--steps", "5", "--help", "--bogus"});
  EXPECT_TRUE(p.help_requested());
  std::string h = p.help();
  for (const char* s : {"--steps", "training steps", "(default: 100)", "--lr", "(default: 0.001)", "--out",
                        "(default: ./out)", "--quiet", "(default: false)", "--help"})
    EXPECT_NE(h.find(s), std::string::npos) << s << "\n" << h;
}

TEST(Cli, ProgrammerErrors) {
  Parser p = make_parser();
  EXPECT_THROW(p.get_int("lr"), std::logic_error);
  EXPECT_THROW(p.get_int("nope"), std::logic_error);
  EXPECT_THROW(p.add_int("steps", 1, "dup"), std::logic_error);
  EXPECT_THROW(p.add_int("n", 0, "default outside range", 1, 10), std::logic_error);
  EXPECT_THROW(p.add_double("x", 0.0, "zero not allowed", 0.0, 1.0, true), std::logic_error);
}

TEST(Cli, StrictConverters) {
  EXPECT_EQ(nash::cli::parse_int("--n", "-42"), -42);
  EXPECT_EQ(nash::cli::parse_int("--n", "+7"), 7);
  EXPECT_DOUBLE_EQ(nash::cli::parse_double("--x", "1e-3"), 1e-3);
  EXPECT_DOUBLE_EQ(nash::cli::parse_double("--x", "-.5"), -0.5);
  EXPECT_THROW(nash::cli::parse_int("--n", "9223372036854775808"), UsageError);
  EXPECT_THROW(nash::cli::parse_double("--x", ""), UsageError);
}

TEST(Cli, ProgressPlainLinesEveryTenPercent) {
  std::ostringstream os;
  ProgressBar bar(200, os, false);
  for (int s = 1; s <= 200; ++s) bar.update(s, {{"D", 1.25}, {"G", 0.5}});
  bar.finish();
  std::string out = os.str();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 10) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_NE(out.find("step 20/200 (10%)"), std::string::npos) << out;
  EXPECT_NE(out.find("step 200/200 (100%)"), std::string::npos) << out;
  EXPECT_NE(out.find("D 1.2500"), std::string::npos) << out;
  EXPECT_NE(out.find("G 0.5000"), std::string::npos) << out;
  EXPECT_NE(out.find("it/s"), std::string::npos) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
}

TEST(Cli, ProgressTtyRedrawsOneLine) {
  std::ostringstream os;
  ProgressBar bar(5, os, true);
  for (int s = 1; s <= 5; ++s) bar.update(s, {{"D", 1.0}});
  bar.finish();
  std::string out = os.str();
  EXPECT_GE(std::count(out.begin(), out.end(), '\r'), 2);  // the first step and the last always draw
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_NE(out.find("[########################] step 5/5 (100%)"), std::string::npos) << out;
}

TEST(Cli, ProgressFormat) {
  std::string s = ProgressBar::format(30, 100, 2.0, {{"D", 1.2}}, false);
  EXPECT_EQ(s, "step 30/100 (30%)  15.0 it/s  ETA 4.7s  D 1.2000");
  EXPECT_EQ(ProgressBar::format_duration(185), "3m05s");
  EXPECT_EQ(ProgressBar::format_duration(7260), "2h01m");
  EXPECT_EQ(ProgressBar::format_duration(-1), "?");
}
