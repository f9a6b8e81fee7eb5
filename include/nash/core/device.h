// Device (CPU or CUDA with an index) and DType (float32, float64) tags carried by every tensor.
#pragma once
#include <cstddef>
#include <ostream>
#include <string>

namespace nash {

enum class DType { Float32, Float64 };

inline std::size_t element_size(DType t) { return t == DType::Float32 ? 4 : 8; }
inline const char* dtype_name(DType t) { return t == DType::Float32 ? "float32" : "float64"; }
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

struct Device {
  // EmuCUDA runs nash's CUDA kernels on the host through the emulation harness (tests; see docs/EMULATION.md).
  enum class Kind { CPU, CUDA, EmuCUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return Device{Kind::CPU, 0}; }
  static Device cuda(int index = 0) { return Device{Kind::CUDA, index}; }
  static Device emu_cuda() { return Device{Kind::EmuCUDA, 0}; }
  bool is_cpu() const { return kind == Kind::CPU; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  bool is_emu_cuda() const { return kind == Kind::EmuCUDA; }
  // Memory the host can address directly (CPU, and the emulated CUDA device).
  bool is_host_memory() const { return kind != Kind::CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && (kind != Kind::CUDA || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const {
    return is_cpu() ? "cpu" : is_emu_cuda() ? "emu-cuda" : "cuda:" + std::to_string(index);
  }
  // Parses "cpu", "cuda", "cuda:N" or "emu-cuda"; throws nash::Error on anything else.
  static Device parse(const std::string& s);
};

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace nash
