// libFuzzer target: the safetensors parser (header length, JSON, dtypes, shapes, offsets, metadata). Every input
// must either parse or throw nash::Error.
#include <cstdint>
#include <string>

#include "nash/core/error.h"
#include "nash/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    nash::io::SafetensorsFile f =
        nash::io::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
    for (const auto& kv : f.tensors) (void)kv.second.numel();
  } catch (const nash::Error&) {
  }
  return 0;
}
