// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
// Every draw is a pure function of (seed, stream, counter, index), so results do not depend on the
// thread count or on the order in which threads run, and the "RNG state" of a run is just its seed plus
// the step / epoch counters that are saved in checkpoints anyway.
#pragma once
#include <cmath>
#include <cstdint>

// Usable from CUDA kernels too, so the CUDA backend draws exactly the CPU engine's masks and eps.
#ifdef __CUDACC__
#define VAECF_HD __host__ __device__
#else
#define VAECF_HD
#endif

namespace vaecf {

struct Philox4x32 {
  VAECF_HD static inline void round(uint32_t ctr[4], const uint32_t key[2]) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * ctr[0];
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * ctr[2];
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    const uint32_t n0 = hi1 ^ ctr[1] ^ key[0];
    const uint32_t n2 = hi0 ^ ctr[3] ^ key[1];
    ctr[0] = n0; ctr[1] = lo1; ctr[2] = n2; ctr[3] = lo0;
  }
  // 4 random 32-bit words for the 128-bit counter (c0..c3) under a 64-bit key.
  VAECF_HD static inline void generate(uint64_t key64, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                              uint32_t out[4]) {
    uint32_t key[2] = {uint32_t(key64), uint32_t(key64 >> 32)};
    uint32_t ctr[4] = {c0, c1, c2, c3};
    for (int r = 0; r < 10; ++r) {
      round(ctr, key);
      key[0] += 0x9E3779B9u;
      key[1] += 0xBB67AE85u;
    }
    out[0] = ctr[0]; out[1] = ctr[1]; out[2] = ctr[2]; out[3] = ctr[3];
  }
};

// Named streams keep the different uses of randomness independent of each other.
enum class Stream : uint32_t {
  InputDropout = 1,
  HiddenDropout = 2,   // + layer index * 0x100
  Reparameterisation = 3,
  EpochShuffle = 4,
  Initialisation = 5,
};

// A view on one stream at one step (a training step, an epoch, a layer): draws by element index.
class CounterRng {
 public:
  VAECF_HD CounterRng(uint64_t seed, uint32_t stream, uint64_t step)
      : seed_(seed), stream_(stream), step_(step) {}
  // The Philox key and the counter's two fixed words: index i draws generate(key(), uint32(i),
  // uint32(i >> 32), counter2(), counter3()) (the vector kernel cpu::philoxWords uses the same layout).
  VAECF_HD inline uint64_t key() const { return seed_; }
  VAECF_HD inline uint32_t counter2() const { return uint32_t(step_); }
  VAECF_HD inline uint32_t counter3() const { return (stream_ << 8) ^ uint32_t(step_ >> 32); }
  // Uniform in [0, 1) with 24 random bits (exactly representable in float).
  VAECF_HD inline float uniform(uint64_t index) const {
    uint32_t w[4];
    Philox4x32::generate(seed_, uint32_t(index), uint32_t(index >> 32), counter2(), counter3(), w);
    return uniformOf(w[0]);
  }
  VAECF_HD static inline float uniformOf(uint32_t w0) { return float(w0 >> 8) * (1.0f / 16777216.0f); }
  // Uniform in [0, 1) with 53 random bits.
  VAECF_HD inline double uniformDouble(uint64_t index) const {
    uint32_t w[4];
    Philox4x32::generate(seed_, uint32_t(index), uint32_t(index >> 32), counter2(), counter3(), w);
    const uint64_t bits = (uint64_t(w[0]) << 21) ^ (uint64_t(w[1]) >> 11);
    return double(bits & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
  // The two uniforms of normal(index): u1 in (0, 1] and u2 in [0, 1), 53 bits each, from one Philox block.
  VAECF_HD inline void boxMullerUniforms(uint64_t index, double* u1, double* u2) const {
    uint32_t w[4];
    Philox4x32::generate(seed_, uint32_t(index), uint32_t(index >> 32), counter2(), counter3(), w);
    boxMullerUniformsOf(w, u1, u2);
  }
  VAECF_HD static inline void boxMullerUniformsOf(const uint32_t w[4], double* u1, double* u2) {
    *u1 = (double((uint64_t(w[0]) << 21) ^ (w[1] >> 11)) + 1.0) * (1.0 / 9007199254740993.0);
    *u2 = double((uint64_t(w[2]) << 21) ^ (w[3] >> 11)) * (1.0 / 9007199254740992.0);
  }
  // Standard normal by Box-Muller: sqrt(-2 log u1) cos(2 pi u2). (The CPU engine's float path computes
  // the same formula with vector log and cos: cpu::normalsInto.)
  VAECF_HD inline double normal(uint64_t index) const {
    double u1, u2;
    boxMullerUniforms(index, &u1, &u2);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
  }
  // Uniform integer in [0, n) (n < 2^53), unbiased enough for shuffling (53-bit multiply).
  VAECF_HD inline uint64_t below(uint64_t index, uint64_t n) const {
    return uint64_t(uniformDouble(index) * double(n));
  }

 private:
  uint64_t seed_;
  uint32_t stream_;
  uint64_t step_;
};

}  // namespace vaecf
