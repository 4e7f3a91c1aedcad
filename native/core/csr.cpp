#include "csr.h"

#include <cmath>

namespace vaecf {

void validateCsr(const CsrView& m, const char* what, bool allowEmptyRows) {
  auto fail = [&](const std::string& msg) { throw InvalidArgument(std::string(what) + ": " + msg); };
  if (m.rows < 0 || m.cols <= 0) fail("expected a positive number of columns and rows >= 0");
  if (m.rows == 0) return;
  if (m.indptr[0] != 0) fail("indptr[0] must be 0, got " + std::to_string(m.indptr[0]));
  for (int64_t r = 0; r < m.rows; ++r) {
    const int64_t b = m.indptr[r], e = m.indptr[r + 1];
    if (e < b) fail("indptr must not decrease (row " + std::to_string(r) + ")");
    if (e == b && !allowEmptyRows)
      fail("row " + std::to_string(r) + " has no clicks; every user needs at least one item");
    for (int64_t k = b; k < e; ++k) {
      const int32_t c = m.indices[k];
      if (c < 0 || c >= m.cols)
        fail("row " + std::to_string(r) + " has item index " + std::to_string(c) +
             ", expected 0 <= index < " + std::to_string(m.cols));
      if (m.values) {
        const float v = m.values[k];
        if (!std::isfinite(v) || v <= 0.0f)
          fail("row " + std::to_string(r) + " has value " + std::to_string(v) +
               ", expected a finite positive number");
      }
    }
  }
}

}  // namespace vaecf
