// nash::Error, the one exception type nash throws, and the NASH_CHECK macro that builds its message.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace nash {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... R>
void append(std::ostringstream& os, const T& v, const R&... rest) {
  os << v;
  append(os, rest...);
}
template <class... A>
[[noreturn]] void fail(const A&... parts) {
  std::ostringstream os;
  append(os, parts...);
  throw Error(os.str());
}
}  // namespace detail
}  // namespace nash

// NASH_CHECK(cond, "op: ", ...) throws nash::Error with the concatenated message when cond is false.
#define NASH_CHECK(cond, ...)                  \
  do {                                         \
    if (!(cond)) ::nash::detail::fail(__VA_ARGS__); \
  } while (0)
