// libFuzzer target: the IDX reader (gzip detection and inflation, header and length checks, image and label
// conversion). Every input must either parse or throw nash::Error; a crash, hang, leak or sanitizer report is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "nash/core/error.h"
#include "nash/data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  // The in-memory parser, then the file reader (which also takes gzip) on the same bytes.
  static const std::string path = "/tmp/nash_fuzz_idx_" + std::to_string(::getpid());
  const std::vector<uint8_t> bytes(data, data + size);
  for (int from_file = 0; from_file < 2; ++from_file) {
    try {
      nash::data::IdxArray a;
      if (from_file) {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        if (!f) return 0;
        std::fwrite(data, 1, size, f);
        std::fclose(f);
        a = nash::data::read_idx(path);
      } else {
        a = nash::data::parse_idx(bytes, "fuzz input");
      }
      if (a.numel() < (1 << 20)) {
        if (a.dims.size() == 3) nash::data::idx_to_images(a, "fuzz input", 32);
        if (a.dims.size() == 1) nash::data::idx_to_labels(a, "fuzz input");
      }
    } catch (const nash::Error&) {
    }
  }
  return 0;
}
