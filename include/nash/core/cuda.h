// CUDA runtime queries: whether a device answers, how many, and why not; safe to call in any build.
#pragma once
#include <string>

namespace nash {
namespace cuda {

bool is_available();
int device_count();
// Why is_available() is false (e.g. no driver, no device, built without CUDA); empty when available.
std::string unavailable_reason();

}  // namespace cuda
}  // namespace nash
