// Singular values of a dense matrix and eigen-decompositions of symmetric ones through LAPACK (dgesdd and dsyevd,
// the copy OpenBLAS ships). Not an op: no history, no
// device kernel; for analysis (e.g. the spectrum of a discriminator's weights), not for training.
#pragma once
#include <cstdint>
#include <vector>

#include "nash/core/tensor.h"

namespace nash {
namespace linalg {

// Whether this build of nash has LAPACK. Without it the functions below throw a nash::Error saying so.
bool lapack_available();

// The min(rows, cols) singular values, descending, of the row-major (rows, cols) float64 matrix a. Throws on an
// empty matrix, a size mismatch, a non-finite entry, or LAPACK not converging.
std::vector<double> singular_values(const std::vector<double>& a, int64_t rows, int64_t cols);

// Eigen-decomposition of the symmetric row-major n x n matrix a (its upper triangle is read) through LAPACK's
// dsyevd: eigenvalues ascending into *values, the orthonormal eigenvectors as the COLUMNS of *vectors (row-major
// n x n). Throws on a size mismatch, a non-finite entry, or LAPACK not converging.
void symmetric_eigen(const std::vector<double>& a, int64_t n, std::vector<double>* values,
                     std::vector<double>* vectors);

// The same for a 2-D tensor of any float dtype and device (copied to the host as float64): a float64 CPU tensor
// of shape (min(rows, cols),), descending.
Tensor singular_values(const Tensor& a);

}  // namespace linalg
}  // namespace nash
