// Top-k of one row of scores, best first, ties broken by the smaller index (deterministic), with
// -inf meaning "not a candidate" (written as index -1, score -inf). One pass with a min-heap of the k
// best so far: after the first k items an item costs one comparison with the heap's worst, so a row of
// 20,000 items takes ~20 us for k = 20 (a partial sort over an index array took ~100 us).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace vaecf::cpu {

template <typename T>
class RowTopK {
 public:
  // outIdx / outScore: [k]; entries past the candidates are -1 / -inf.
  void operator()(const T* row, int64_t n, int64_t k, int32_t* outIdx, float* outScore) {
    const int64_t kk = std::min(k, n);
    heap_.clear();
    // "a ranks below b": lower score, or the same score and a larger index.
    const auto below = [](const Entry& a, const Entry& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); };
    // std heap functions keep the largest per the comparator on top; with `above` the worst is on top.
    const auto above = [&below](const Entry& a, const Entry& b) { return below(b, a); };
    for (int64_t i = 0; i < n; ++i) {
      const T v = row[i];
      if (int64_t(heap_.size()) < kk) {
        heap_.emplace_back(v, int32_t(i));
        std::push_heap(heap_.begin(), heap_.end(), above);
      } else if (kk > 0 && v > heap_.front().first) {  // an equal score has a larger index: never better
        std::pop_heap(heap_.begin(), heap_.end(), above);
        heap_.back() = Entry(v, int32_t(i));
        std::push_heap(heap_.begin(), heap_.end(), above);
      }
    }
    std::sort(heap_.begin(), heap_.end(), [&below](const Entry& a, const Entry& b) { return below(b, a); });
    for (int64_t r = 0; r < k; ++r) {
      const bool valid = r < int64_t(heap_.size()) && heap_[size_t(r)].first != -std::numeric_limits<T>::infinity();
      outIdx[r] = valid ? heap_[size_t(r)].second : -1;
      outScore[r] = valid ? float(heap_[size_t(r)].first) : -std::numeric_limits<float>::infinity();
    }
  }

 private:
  using Entry = std::pair<T, int32_t>;
  std::vector<Entry> heap_;
};

}  // namespace vaecf::cpu
