// Top-k of one row of scores, best first, ties broken by the smaller index (deterministic), with
// -inf meaning "not a candidate" (written as index -1, score -inf). One pass with a min-heap of the k
// best so far: after the first k items an item costs one comparison with the heap's worst (for float
// rows a vector scan, kernels.h firstAbove, finds the next item above it), and an item that beats it
// replaces it with one sift-down. (A partial sort over an index array took ~100 us for 20,000 items.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <type_traits>
#include <vector>

#include "cpu/kernels.h"

namespace vaecf::cpu {

template <typename T>
class RowTopK {
 public:
  // outIdx / outScore: [k]; entries past the candidates are -1 / -inf.
  void operator()(const T* row, int64_t n, int64_t k, int32_t* outIdx, float* outScore) {
    const int64_t kk = std::max<int64_t>(0, std::min(k, n));
    heap_.clear();
    // The first kk items as a heap whose top is the worst (std's heap keeps on top what its comparator
    // ranks largest; here "a < b" when b ranks below a).
    int64_t i = 0;
    for (; i < kk; ++i) heap_.emplace_back(row[i], int32_t(i));
    std::make_heap(heap_.begin(), heap_.end(), [](const Entry& a, const Entry& b) { return below(b, a); });
    if (kk > 0) {
      if constexpr (std::is_same_v<T, float>) {
        // An item equal to the worst has a larger index, so never better: only items strictly above it enter.
        while ((i += firstAbove(row + i, n - i, heap_.front().first)) < n) {
          replaceWorst(Entry(row[i], int32_t(i)));
          ++i;
        }
      } else {
        for (; i < n; ++i)
          if (row[i] > heap_.front().first) replaceWorst(Entry(row[i], int32_t(i)));
      }
    }
    std::sort(heap_.begin(), heap_.end(), [](const Entry& a, const Entry& b) { return below(b, a); });
    for (int64_t r = 0; r < k; ++r) {
      const bool valid = r < int64_t(heap_.size()) && heap_[size_t(r)].first != -std::numeric_limits<T>::infinity();
      outIdx[r] = valid ? heap_[size_t(r)].second : -1;
      outScore[r] = valid ? float(heap_[size_t(r)].first) : -std::numeric_limits<float>::infinity();
    }
  }

 private:
  using Entry = std::pair<T, int32_t>;
  // "a ranks below b": lower score, or the same score and a larger index.
  static bool below(const Entry& a, const Entry& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); }
  // The heap's worst (its top) replaced by e, which ranks above it, and sifted down: each node ranks below
  // (or equal to) its children.
  void replaceWorst(const Entry& e) {
    const size_t n = heap_.size();
    size_t at = 0;
    for (;;) {
      size_t child = 2 * at + 1;
      if (child >= n) break;
      if (child + 1 < n && below(heap_[child + 1], heap_[child])) ++child;  // the worse child
      if (!below(heap_[child], e)) break;
      heap_[at] = heap_[child];
      at = child;
    }
    heap_[at] = e;
  }
  std::vector<Entry> heap_;
};

}  // namespace vaecf::cpu
