// Singular values through LAPACK's dgesdd (values only). A row-major (rows, cols) matrix is, read column-major,
// its transpose (cols, rows), which has the same singular values: LAPACK gets the buffer as it is.
#include "nash/linalg/svd.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "kernels/cpu/gemm.h"
#include "nash/core/autograd.h"

#ifdef NASH_WITH_LAPACK
#include <cblas.h>  // OpenBLAS's blasint: 32-bit, or 64-bit in an ILP64 build

// LAPACK's Fortran entry point (no lapacke.h needed). The trailing length is the hidden argument gfortran passes
// for the CHARACTER jobz.
extern "C" void dgesdd_(const char* jobz, const blasint* m, const blasint* n, double* a, const blasint* lda,
                        double* s, double* u, const blasint* ldu, double* vt, const blasint* ldvt, double* work,
                        const blasint* lwork, blasint* iwork, blasint* info, std::size_t jobz_len);
extern "C" void dsyevd_(const char* jobz, const char* uplo, const blasint* n, double* a, const blasint* lda,
                        double* w, double* work, const blasint* lwork, blasint* iwork, const blasint* liwork,
                        blasint* info, std::size_t jobz_len, std::size_t uplo_len);
#endif

namespace nash {
namespace linalg {

bool lapack_available() {
#ifdef NASH_WITH_LAPACK
  return true;
#else
  return false;
#endif
}

std::vector<double> singular_values(const std::vector<double>& a, int64_t rows, int64_t cols) {
  NASH_CHECK(rows > 0 && cols > 0, "singular_values: needs a non-empty matrix, got (", rows, ", ", cols, ")");
  NASH_CHECK(static_cast<int64_t>(a.size()) == rows * cols, "singular_values: a (", rows, ", ", cols, ") matrix needs ",
             rows * cols, " values, got ", a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    NASH_CHECK(std::isfinite(a[i]), "singular_values: entry (", static_cast<int64_t>(i) / cols, ", ",
               static_cast<int64_t>(i) % cols, ") of the (", rows, ", ", cols, ") matrix is ", a[i]);
#ifdef NASH_WITH_LAPACK
  // Column-major view: m = cols rows, n = rows columns, leading dimension cols.
  const blasint m = static_cast<blasint>(cols), n = static_cast<blasint>(rows), lda = m, one = 1;
  NASH_CHECK(static_cast<int64_t>(m) == cols && static_cast<int64_t>(n) == rows,
             "singular_values: (", rows, ", ", cols, ") is too large for this LAPACK's integer size");
  std::vector<double> work_a = a;  // dgesdd overwrites its input
  std::vector<double> s(static_cast<std::size_t>(std::min(rows, cols)));
  std::vector<blasint> iwork(8 * s.size());
  double u = 0, vt = 0, query = 0;  // not referenced for jobz = 'N'
  blasint lwork = -1, info = 0;
  cpu::blas_on_calling_thread();
  dgesdd_("N", &m, &n, work_a.data(), &lda, s.data(), &u, &one, &vt, &one, &query, &lwork, iwork.data(), &info, 1);
  NASH_CHECK(info == 0, "singular_values: dgesdd workspace query failed (info ", static_cast<int64_t>(info), ")");
  lwork = static_cast<blasint>(query) + 1;
  std::vector<double> work(static_cast<std::size_t>(lwork));
  dgesdd_("N", &m, &n, work_a.data(), &lda, s.data(), &u, &one, &vt, &one, work.data(), &lwork, iwork.data(), &info,
          1);
  NASH_CHECK(info == 0, "singular_values: dgesdd ", info > 0 ? "did not converge" : "rejected an argument",
             " (info ", static_cast<int64_t>(info), ") on a (", rows, ", ", cols, ") matrix");
  std::sort(s.begin(), s.end(), std::greater<double>());  // LAPACK returns them descending; make it a guarantee
  return s;
#else
  NASH_CHECK(false, "singular_values: this nash was built without LAPACK (it uses the copy in OpenBLAS; configure "
                    "with OpenBLAS found and NASH_BLAS not BUILTIN)");
  return {};
#endif
}

void symmetric_eigen(const std::vector<double>& a, int64_t n, std::vector<double>* values,
                     std::vector<double>* vectors) {
  NASH_CHECK(values && vectors, "symmetric_eigen: null output");
  NASH_CHECK(n >= 1 && static_cast<int64_t>(a.size()) == n * n, "symmetric_eigen: expected a ", n, " x ", n,
             " matrix (", n * n, " values), got ", a.size(), " values");
  for (double v : a) NASH_CHECK(std::isfinite(v), "symmetric_eigen: the matrix holds a non-finite value");
#ifdef NASH_WITH_LAPACK
  const blasint nn = static_cast<blasint>(n);
  NASH_CHECK(static_cast<int64_t>(nn) == n, "symmetric_eigen: n = ", n, " is too large for this LAPACK");
  // Row-major and column-major storage of a symmetric matrix coincide; the upper triangle of one is the lower of
  // the other, so "L" reads the row-major upper triangle.
  std::vector<double> w = a;
  values->assign(static_cast<std::size_t>(n), 0.0);
  double wq = 0;
  blasint iq = 0, lwork = -1, liwork = -1, info = 0;
  cpu::blas_on_calling_thread();
  dsyevd_("V", "L", &nn, w.data(), &nn, values->data(), &wq, &lwork, &iq, &liwork, &info, 1, 1);
  NASH_CHECK(info == 0, "symmetric_eigen: dsyevd workspace query failed (info ", static_cast<int64_t>(info), ")");
  lwork = static_cast<blasint>(wq) + 1;
  liwork = iq;
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<blasint> iwork(static_cast<std::size_t>(std::max<blasint>(liwork, 1)));
  dsyevd_("V", "L", &nn, w.data(), &nn, values->data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  NASH_CHECK(info == 0, "symmetric_eigen: dsyevd ", info > 0 ? "did not converge" : "rejected an argument",
             " (info ", static_cast<int64_t>(info), ") on a ", n, " x ", n, " matrix");
  // LAPACK's column j (column-major: w[j n + i]) is eigenvector j; as a column of the row-major result.
  vectors->assign(static_cast<std::size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < n; ++i) (*vectors)[i * n + j] = w[j * n + i];
#else
  NASH_CHECK(false, "symmetric_eigen: this nash was built without LAPACK");
#endif
}

Tensor singular_values(const Tensor& a) {
  NASH_CHECK(a.defined() && a.dim() == 2, "singular_values: needs a 2-D tensor, got ",
             shape_str(a));
  NoGradGuard ng;
  std::vector<double> host = a.detach().to(Device::cpu()).contiguous().to_vector<double>();
  std::vector<double> s = singular_values(host, a.size(0), a.size(1));
  return from_vector(s, {static_cast<int64_t>(s.size())});
}

}  // namespace linalg
}  // namespace nash
