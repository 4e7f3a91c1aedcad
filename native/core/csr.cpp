#include "csr.h"

#include <cmath>
#include <cstdio>

namespace vaecf {

namespace {
// A float as JavaScript prints it for the values that matter in a message (NaN, Infinity, -1, 0.5).
std::string jsNumber(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  return buf;
}
}  // namespace

void validateCsr(const CsrView& m, const char* what, bool allowEmptyRows) {
  auto fail = [&](const std::string& msg) { throw InvalidArgument(std::string(what) + ": " + msg); };
  if (m.rows < 0 || m.cols <= 0) fail("expected a positive number of columns and rows >= 0");
  if (m.rows == 0) return;
  if (m.indptr[0] != 0) fail("indptr[0]: expected 0, got " + std::to_string(m.indptr[0]));
  for (int64_t r = 0; r < m.rows; ++r) {
    const int64_t b = m.indptr[r], e = m.indptr[r + 1];
    if (e < b) fail("indptr decreases at row " + std::to_string(r));
    if (e == b && !allowEmptyRows)
      fail("row " + std::to_string(r) + " has no items; every user needs at least one click");
    for (int64_t k = b; k < e; ++k) {
      const int32_t c = m.indices[k];
      if (c < 0 || c >= m.cols)
        fail("row " + std::to_string(r) + " has item index " + std::to_string(c) +
             ", expected 0 <= index < " + std::to_string(m.cols));
      if (m.values) {
        const float v = m.values[k];
        if (!std::isfinite(v) || v <= 0.0f)
          fail("row " + std::to_string(r) + " has click value " + jsNumber(v) +
               ", expected a finite positive number");
      }
    }
  }
}

}  // namespace vaecf
