// Reading and writing the safetensors format (8-byte header length, JSON header, raw little-endian data), atomically.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace io {

struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order, on the CPU
  std::map<std::string, std::string> metadata;          // the "__metadata__" string map
  const Tensor* find(const std::string& name) const;
};

// Writes float32/float64 tensors (any device; copied to the host) under their names. The file is written to a
// temporary name in the same directory, flushed to disk and renamed, so a crash never leaves a partial file.
// Throws nash::Error naming the path on any I/O failure (the previous file, if any, is left untouched).
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a safetensors file; every malformed input (short file, bad header length, bad JSON, unknown dtype,
// offsets outside the data or overlapping, shape/size mismatch) is a nash::Error naming the file and the problem.
SafetensorsFile load_safetensors(const std::string& path);

// Parses an in-memory image of a file (for tests and fuzzing); `what` names the source in errors.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what);

}  // namespace io
}  // namespace nash
