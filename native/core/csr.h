// Compressed sparse rows of the user x item click matrix. Views only: the memory belongs to the caller.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace vaecf {

struct CsrView {
  int64_t rows = 0;
  int64_t cols = 0;
  const int64_t* indptr = nullptr;   // [rows + 1]
  const int32_t* indices = nullptr;  // [nnz], item index per click
  const float* values = nullptr;     // [nnz] or nullptr for binary clicks (all ones)
  // An id the caller gives a matrix whose contents do not change while it keeps that id (one fit() in
  // the TypeScript API); 0: unknown. Engines may key what they derive from the matrix (a validation, a
  // device-resident copy) on it instead of re-reading the contents.
  uint64_t generation = 0;
  int64_t nnz() const { return rows ? indptr[rows] - indptr[0] : 0; }
  float value(int64_t k) const { return values ? values[k] : 1.0f; }
};

struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Structural check: monotone indptr, indices within [0, cols), finite positive values; optionally no
// empty rows. Throws InvalidArgument naming the first offending row, in the words of the TypeScript
// validateCsr (src/data/csr.ts).
void validateCsr(const CsrView& m, const char* what, bool allowEmptyRows);

}  // namespace vaecf
