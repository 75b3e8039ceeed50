// The C++ CPU engine of a recurrent cell: the whole sequence, forward and backward, in one call.
//
// Same plan as the Triton kernel and `fused.py`: the input projections of all steps arrive as one
// matrix (`xp`), the loop over steps runs here, one GEMM per source of recurrent edges and step
// (straight to BLAS, no dispatcher), and the cell's pointwise graph as plain loops over the
// [B, H] tiles, which the compiler vectorises (`vexp` below is a branch-free exp for that).
// The program arrives as a flat list of integers (`kernels/recurrent/native.py` writes it) and is
// decoded once per program into an `Engine`; one build serves every cell.
//
// Forward keeps every step's values `V` [NV, T, B, H], pre-activations `Z` [T, n, B, H] and edge
// projections `P` [E, T, B, H]; the backward is the reverse loop: per step, the cell's pointwise
// backward and per source `dV_src += dP_g W_g`; after the loop, per source, one GEMM over all steps
// `dW_g = dP_g^T V_src` (K = T B rows; measured as fast as one small GEMM per step, and simpler).
// Deterministic, no atomics. Activation derivatives: a one-unit activation's from the saved value
// (and pre-activation), longer ones by forward-mode (value, derivative) evaluation of the
// activation's bytecode on the saved pre-activation.

#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

extern "C" {
// Fortran BLAS, exported by libtorch_cpu (MKL or OpenBLAS); weak: absent -> the at::mm fallback.
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace {

// Row-major C[M, N] = alpha * op(A) @ op(B) + beta * C, with op(A) [M, K], op(B) [K, N].
// BLAS is column-major: C^T = op(B)^T op(A)^T, so the operands swap and the flags carry over.
template <typename T>
void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
          int ldc) {
  const char a = ta ? 'T' : 'N', b = tb ? 'T' : 'N';
  if constexpr (std::is_same_v<T, float>) {
    if (sgemm_) {
      sgemm_(&b, &a, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
      return;
    }
  } else {
    if (dgemm_) {
      dgemm_(&b, &a, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
      return;
    }
  }
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto At = torch::from_blob(const_cast<T*>(A), {ta ? K : M, ta ? M : K}, {lda, 1}, opts);
  auto Bt = torch::from_blob(const_cast<T*>(B), {tb ? N : K, tb ? K : N}, {ldb, 1}, opts);
  auto Ct = torch::from_blob(C, {M, N}, {ldc, 1}, opts);
  at::addmm_out(Ct, Ct, ta ? At.t() : At, tb ? Bt.t() : Bt, beta, alpha);
}

// exp without branches or calls, so that loops over it vectorise (std::floor would stop GCC):
// 2^n * p(r), n = x / ln2 rounded by the 1.5 * 2^k trick, r = x - n ln2 (Cody-Waite), p the Taylor polynomial (degree 7 for float, 13 for double: relative error below the type's
// epsilon). Saturates outside [-87, 88] (float) / [-708, 709] (double); NaN passes through.
__attribute__((always_inline)) inline float vexp(float x) {
  float c = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float n = (c * 1.4426950408889634f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23)
  float r = c - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x == x ? p * scale : x;
}

__attribute__((always_inline)) inline double vexp(double x) {
  double c = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  double n = (c * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0;  // (1.5 * 2^52)
  double r = (c - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x == x ? p * scale : x;
}

template <typename T>
__attribute__((always_inline)) inline T vsigmoid(T x) {
  return T(1) / (T(1) + vexp(-x));
}

template <typename T>
__attribute__((always_inline)) inline T vtanh(T x) {  // 2 sigmoid(2x) - 1, as fused.py's _tanh_m (abs. error ~ epsilon)
  return T(2) * vsigmoid(x + x) - T(1);
}

template <typename T>
inline T sign(T x) {
  return T((x > T(0)) - (x < T(0)));
}

// Activation units; the numbers are kernels/recurrent/native.py's UNITS.
enum Unit : int {
  X = 0, NEG, ABS, SQUARE, CUBE, EXP, SIN, COS, SINH, COSH, TANH, ASINH, ATAN, SIGMOID, RELU, MINZERO, SOFTPLUS,
  ERF, GAUSS, GELU, ZERO, ONE, ADD = 100, SUB, MUL, DIV, MAX, MIN, SIGMUL
};
constexpr double DIV_EPS = 1e-3;  // kernels.activation.expr.DIV_EPS

struct Instr {
  int unit, a, b;  // registers; register 0 is the pre-activation, instruction k writes register k + 1
};

struct Term {
  int kind, index;  // 0: x chunk, 1: recurrent edge, 2: value
};

struct Op {
  int combine;  // 0 add, 1 mul, 2 sub
  int bias;
  std::vector<Term> terms;
  std::vector<Instr> act;  // empty: identity
};

struct Group {
  int src, first, k;
};

// Pointwise value of one unit over n elements.
template <typename T>
void unit_value(int unit, const T* a, const T* b, T* y, int n) {
  switch (unit) {
    case NEG: for (int i = 0; i < n; ++i) y[i] = -a[i]; break;
    case ABS: for (int i = 0; i < n; ++i) y[i] = std::abs(a[i]); break;
    case SQUARE: for (int i = 0; i < n; ++i) y[i] = a[i] * a[i]; break;
    case CUBE: for (int i = 0; i < n; ++i) y[i] = a[i] * a[i] * a[i]; break;
    case EXP: for (int i = 0; i < n; ++i) y[i] = vexp(a[i]); break;
    case SIN: for (int i = 0; i < n; ++i) y[i] = std::sin(a[i]); break;
    case COS: for (int i = 0; i < n; ++i) y[i] = std::cos(a[i]); break;
    case SINH: for (int i = 0; i < n; ++i) y[i] = T(0.5) * (vexp(a[i]) - vexp(-a[i])); break;
    case COSH: for (int i = 0; i < n; ++i) y[i] = T(0.5) * (vexp(a[i]) + vexp(-a[i])); break;
    case TANH: for (int i = 0; i < n; ++i) y[i] = vtanh(a[i]); break;
    case ASINH: for (int i = 0; i < n; ++i) y[i] = std::asinh(a[i]); break;
    case ATAN: for (int i = 0; i < n; ++i) y[i] = std::atan(a[i]); break;
    case SIGMOID: for (int i = 0; i < n; ++i) y[i] = vsigmoid(a[i]); break;
    case RELU: for (int i = 0; i < n; ++i) y[i] = a[i] < T(0) ? T(0) : a[i]; break;  // NaN passes
    case MINZERO: for (int i = 0; i < n; ++i) y[i] = a[i] > T(0) ? T(0) : a[i]; break;
    case SOFTPLUS: for (int i = 0; i < n; ++i) y[i] = a[i] > T(20) ? a[i] : std::log1p(vexp(a[i])); break;
    case ERF: for (int i = 0; i < n; ++i) y[i] = std::erf(a[i]); break;
    case GAUSS: for (int i = 0; i < n; ++i) y[i] = vexp(-a[i] * a[i]); break;
    case GELU:
      for (int i = 0; i < n; ++i) y[i] = T(0.5) * a[i] * (T(1) + std::erf(a[i] * T(0.7071067811865476)));
      break;
    case ZERO: for (int i = 0; i < n; ++i) y[i] = T(0); break;
    case ONE: for (int i = 0; i < n; ++i) y[i] = T(1); break;
    case ADD: for (int i = 0; i < n; ++i) y[i] = a[i] + b[i]; break;
    case SUB: for (int i = 0; i < n; ++i) y[i] = a[i] - b[i]; break;
    case MUL: for (int i = 0; i < n; ++i) y[i] = a[i] * b[i]; break;
    case DIV: for (int i = 0; i < n; ++i) y[i] = a[i] / (std::abs(b[i]) + T(DIV_EPS)); break;
    case MAX:  // torch.maximum: NaN propagates
      for (int i = 0; i < n; ++i) y[i] = (a[i] != a[i] || b[i] != b[i]) ? a[i] + b[i] : (a[i] > b[i] ? a[i] : b[i]);
      break;
    case MIN:
      for (int i = 0; i < n; ++i) y[i] = (a[i] != a[i] || b[i] != b[i]) ? a[i] + b[i] : (a[i] < b[i] ? a[i] : b[i]);
      break;
    case SIGMUL: for (int i = 0; i < n; ++i) y[i] = vsigmoid(a[i]) * b[i]; break;
    default: throw std::runtime_error("native recurrent engine: unknown activation unit " + std::to_string(unit));
  }
}

// Derivative of one unit: dy = (local derivative) * da (+ ... * db), given a, b, y and their
// derivatives with respect to the pre-activation (forward mode).
template <typename T>
void unit_deriv(int unit, const T* a, const T* da, const T* b, const T* db, const T* y, T* dy, int n) {
  switch (unit) {
    case NEG: for (int i = 0; i < n; ++i) dy[i] = -da[i]; break;
    case ABS: for (int i = 0; i < n; ++i) dy[i] = sign(a[i]) * da[i]; break;
    case SQUARE: for (int i = 0; i < n; ++i) dy[i] = T(2) * a[i] * da[i]; break;
    case CUBE: for (int i = 0; i < n; ++i) dy[i] = T(3) * a[i] * a[i] * da[i]; break;
    case EXP: for (int i = 0; i < n; ++i) dy[i] = y[i] * da[i]; break;
    case SIN: for (int i = 0; i < n; ++i) dy[i] = std::cos(a[i]) * da[i]; break;
    case COS: for (int i = 0; i < n; ++i) dy[i] = -std::sin(a[i]) * da[i]; break;
    case SINH: for (int i = 0; i < n; ++i) dy[i] = T(0.5) * (vexp(a[i]) + vexp(-a[i])) * da[i]; break;
    case COSH: for (int i = 0; i < n; ++i) dy[i] = T(0.5) * (vexp(a[i]) - vexp(-a[i])) * da[i]; break;
    case TANH: for (int i = 0; i < n; ++i) dy[i] = (T(1) - y[i] * y[i]) * da[i]; break;
    case ASINH: for (int i = 0; i < n; ++i) dy[i] = da[i] / std::sqrt(a[i] * a[i] + T(1)); break;
    case ATAN: for (int i = 0; i < n; ++i) dy[i] = da[i] / (T(1) + a[i] * a[i]); break;
    case SIGMOID: for (int i = 0; i < n; ++i) dy[i] = y[i] * (T(1) - y[i]) * da[i]; break;
    case RELU: for (int i = 0; i < n; ++i) dy[i] = a[i] > T(0) ? da[i] : T(0); break;
    case MINZERO: for (int i = 0; i < n; ++i) dy[i] = a[i] <= T(0) ? da[i] : T(0); break;
    case SOFTPLUS: for (int i = 0; i < n; ++i) dy[i] = (a[i] > T(20) ? T(1) : vsigmoid(a[i])) * da[i]; break;
    case ERF: for (int i = 0; i < n; ++i) dy[i] = T(1.1283791670955126) * vexp(-a[i] * a[i]) * da[i]; break;
    case GAUSS: for (int i = 0; i < n; ++i) dy[i] = T(-2) * a[i] * y[i] * da[i]; break;
    case GELU:
      for (int i = 0; i < n; ++i)
        dy[i] = (T(0.5) * (T(1) + std::erf(a[i] * T(0.7071067811865476))) +
                 a[i] * vexp(T(-0.5) * a[i] * a[i]) * T(0.3989422804014327)) * da[i];
      break;
    case ZERO: case ONE: for (int i = 0; i < n; ++i) dy[i] = T(0); break;
    case ADD: for (int i = 0; i < n; ++i) dy[i] = da[i] + db[i]; break;
    case SUB: for (int i = 0; i < n; ++i) dy[i] = da[i] - db[i]; break;
    case MUL: for (int i = 0; i < n; ++i) dy[i] = b[i] * da[i] + a[i] * db[i]; break;
    case DIV:
      for (int i = 0; i < n; ++i) {
        T q = std::abs(b[i]) + T(DIV_EPS);
        dy[i] = da[i] / q - y[i] * sign(b[i]) / q * db[i];
      }
      break;
    case MAX:
      for (int i = 0; i < n; ++i) dy[i] = a[i] > b[i] ? da[i] : (a[i] < b[i] ? db[i] : T(0.5) * (da[i] + db[i]));
      break;
    case MIN:
      for (int i = 0; i < n; ++i) dy[i] = a[i] < b[i] ? da[i] : (a[i] > b[i] ? db[i] : T(0.5) * (da[i] + db[i]));
      break;
    case SIGMUL:
      for (int i = 0; i < n; ++i) {
        T s = vsigmoid(a[i]);
        dy[i] = s * (T(1) - s) * b[i] * da[i] + s * db[i];
      }
      break;
    default: throw std::runtime_error("native recurrent engine: unknown activation unit " + std::to_string(unit));
  }
}

// Reused workspaces: a training step's saved tensors (V, Z, P) and the backward's scratch are a few
// MB; fresh allocations of that size come from mmap and fault in every page on every call (about 300
// page faults per training step at the benchmark's defaults). A buffer is reused once nothing but
// the pool refers to its storage (autograd has freed the saved views).
class Workspaces {
 public:
  at::Tensor take(int64_t numel, const at::TensorOptions& opts) {
    std::lock_guard<std::mutex> guard(mutex_);
    int free_slot = -1;
    for (size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].storage().use_count() != 1) continue;  // still saved for a backward somewhere
      if (items_[i].dtype() == opts.dtype() && items_[i].numel() >= numel) return items_[i].narrow(0, 0, numel);
      free_slot = static_cast<int>(i);
    }
    at::Tensor fresh = at::empty({numel}, opts);
    if (items_.size() < kSlots) {
      items_.push_back(fresh);
    } else if (free_slot >= 0) {
      items_[free_slot] = fresh;  // replace an idle one that was too small or of another dtype
    }
    return fresh.narrow(0, 0, numel);
  }

 private:
  static constexpr size_t kSlots = 8;
  std::mutex mutex_;
  std::vector<at::Tensor> items_;
};

Workspaces& workspaces() {
  static Workspaces pool;
  return pool;
}

class Engine {
 public:
  explicit Engine(const std::vector<int64_t>& code) {
    size_t at = 0;
    auto next = [&]() -> int {
      if (at >= code.size()) throw std::runtime_error("native recurrent engine: truncated program code");
      return static_cast<int>(code[at++]);
    };
    H_ = next(), S_ = next(), nx_ = next();
    int E = next(), n = next();
    for (int e = 0; e < E; ++e) edge_src_.push_back(next());
    for (int i = 0; i < n; ++i) {
      Op op;
      op.combine = next(), op.bias = next();
      int nt = next();
      for (int j = 0; j < nt; ++j) {
        int kind = next();
        op.terms.push_back({kind, next()});
      }
      int ni = next();
      for (int j = 0; j < ni; ++j) {
        int u = next(), a = next();
        op.act.push_back({u, a, next()});
      }
      ops_.push_back(op);
    }
    for (int s = 0; s < S_; ++s) {
      int k = next();
      std::vector<int> outs;
      for (int j = 0; j < k; ++j) outs.push_back(next());
      outputs_.push_back(outs);
    }
    if (at != code.size()) throw std::runtime_error("native recurrent engine: trailing program code");
    NV_ = S_ + n;
    group_of_value_.assign(NV_, -1);
    edge_group_.resize(E);
    for (int e = 0; e < E; ++e) {
      if (!groups_.empty() && groups_.back().src == edge_src_[e] && groups_.back().first + groups_.back().k == e) {
        groups_.back().k += 1;
      } else {
        groups_.push_back({edge_src_[e], e, 1});
      }
      edge_group_[e] = static_cast<int>(groups_.size()) - 1;
    }
    for (size_t g = 0; g < groups_.size(); ++g) group_of_value_[groups_[g].src] = static_cast<int>(g);
    max_regs_ = 1;
    for (auto& op : ops_) max_regs_ = std::max(max_regs_, static_cast<int>(op.act.size()) + 1);
  }

  // -> hs [B, T, H], final [S, B, H], and for the backward V [NV, T, B, H], Z [T, n, B, H], P [E, T, B, H]
  std::vector<at::Tensor> forward(const at::Tensor& xp, const at::Tensor& W, const at::Tensor& b,
                                  const at::Tensor& h0) const {
    std::vector<at::Tensor> out;
    AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "native_recurrent_forward", [&] { out = forward_t<scalar_t>(xp, W, b, h0); });
    return out;
  }

  // -> dxp [B, T, Kx H], dW [E, H, H], db [NB, H], dh0 [S, B, H]
  std::vector<at::Tensor> backward(const at::Tensor& V, const at::Tensor& Z, const at::Tensor& P, const at::Tensor& xp,
                                   const at::Tensor& W, const at::Tensor& b, const at::Tensor& dhs,
                                   const at::Tensor& dfinal) const {
    std::vector<at::Tensor> out;
    AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "native_recurrent_backward", [&] {
      out = backward_t<scalar_t>(V, Z, P, xp, W, b, dhs, dfinal);
    });
    return out;
  }

 private:
  int H_, S_, nx_, NV_, max_regs_;
  std::vector<int> edge_src_, group_of_value_, edge_group_;
  std::vector<Op> ops_;
  std::vector<std::vector<int>> outputs_;
  std::vector<Group> groups_;

  // Layouts: V [NV, T, B, H] (a value's steps are one [T B, H] matrix, for the weight gradients),
  // Z [T, n, B, H], P and dP one [T, B, kH] block per group, group g's at first_g T B H.
  struct Ptr {  // a [B, H] operand: element (r, h) at p[r * stride + h]
    const void* p;
    int64_t stride;
  };

  struct Dims {
    int B, T;
    int64_t BH;
  };

  template <typename T>
  static T* at_step(T* V, int idx, int t, const Dims& d) {
    return V + (static_cast<int64_t>(idx) * d.T + t) * d.BH;
  }

  template <typename T>
  T* group_step(T* P, int g, int t, const Dims& d) const {
    const Group& gr = groups_[g];
    return P + static_cast<int64_t>(gr.first) * d.T * d.BH + static_cast<int64_t>(t) * gr.k * d.BH;
  }

  template <typename T>
  Ptr term_ptr(const Term& t, int step, const Dims& d, const T* xp, const T* V, const T* P) const {
    if (t.kind == 0) return {xp + static_cast<int64_t>(step) * nx_ * H_ + t.index * H_, static_cast<int64_t>(d.T) * nx_ * H_};
    if (t.kind == 1) {
      const int g = edge_group_[t.index];
      return {group_step(P, g, step, d) + (t.index - groups_[g].first) * H_, static_cast<int64_t>(groups_[g].k) * H_};
    }
    return {at_step(V, t.index, step, d), H_};
  }

  // project value `src` of step t through its group's edges: P_g [B, kH] = V_src [B, H] @ W_g^T
  template <typename T>
  void project(int g, int t, const Dims& d, const T* V, const T* W, T* P) const {
    const Group& gr = groups_[g];
    gemm<T>(false, true, d.B, gr.k * H_, H_, T(1), at_step(V, gr.src, t, d), H_,
            W + static_cast<int64_t>(gr.first) * H_ * H_, H_, T(0), group_step(P, g, t, d), gr.k * H_);
  }

  template <typename T>
  void activation(const Op& op, const T* z, T* y, T* regs, int n) const {
    if (op.act.empty()) {
      std::memcpy(y, z, sizeof(T) * n);
      return;
    }
    auto reg = [&](int r) -> const T* { return r == 0 ? z : regs + static_cast<int64_t>(r - 1) * n; };
    for (size_t k = 0; k < op.act.size(); ++k) {
      const Instr& in = op.act[k];
      T* dst = k + 1 == op.act.size() ? y : regs + static_cast<int64_t>(k) * n;
      unit_value<T>(in.unit, reg(in.a), in.b >= 0 ? reg(in.b) : nullptr, dst, n);
    }
  }

  // dz = dv * act'(z). A one-unit activation (its arguments can only be z) is the unit's derivative
  // rule with dv as the argument's derivative, from the saved value y; longer ones run forward mode
  // over the bytecode from z, `ones` being dz/dz.
  template <typename T>
  void activation_backward(const Op& op, const T* z, const T* y, const T* dv, T* dz, T* regs, const T* ones,
                           int n) const {
    if (op.act.empty()) {
      std::memcpy(dz, dv, sizeof(T) * n);
      return;
    }
    if (op.act.size() == 1) {
      const bool binary = op.act[0].b >= 0;
      unit_deriv<T>(op.act[0].unit, z, dv, binary ? z : nullptr, binary ? dv : nullptr, y, dz, n);
      return;
    }
    // register r's value at regs[2(r-1)], its derivative at regs[2(r-1)+1]
    auto val = [&](int r) -> const T* { return r == 0 ? z : regs + static_cast<int64_t>(2 * (r - 1)) * n; };
    auto der = [&](int r) -> const T* { return r == 0 ? ones : regs + static_cast<int64_t>(2 * (r - 1) + 1) * n; };
    for (size_t k = 0; k < op.act.size(); ++k) {
      const Instr& in = op.act[k];
      T* v = regs + static_cast<int64_t>(2 * k) * n;
      T* d = v + n;
      const T* bv = in.b >= 0 ? val(in.b) : nullptr;
      const T* bd = in.b >= 0 ? der(in.b) : nullptr;
      unit_value<T>(in.unit, val(in.a), bv, v, n);
      unit_deriv<T>(in.unit, val(in.a), der(in.a), bv, bd, v, d, n);
    }
    const T* d = der(static_cast<int>(op.act.size()));
    for (int i = 0; i < n; ++i) dz[i] = dv[i] * d[i];
  }

  template <typename T>
  std::vector<at::Tensor> forward_t(const at::Tensor& xp_, const at::Tensor& W_, const at::Tensor& b_,
                                    const at::Tensor& h0_) const {
    const int B = static_cast<int>(xp_.size(0)), T_ = static_cast<int>(xp_.size(1)), n = static_cast<int>(ops_.size());
    const int E = static_cast<int>(edge_src_.size());
    const int64_t BH = static_cast<int64_t>(B) * H_;
    const Dims d{B, T_, BH};
    auto opts = xp_.options();
    at::Tensor hs = at::empty({B, T_, H_}, opts), fin = at::empty({S_, B, H_}, opts);
    const int64_t nV = NV_ * T_ * BH, nZ = static_cast<int64_t>(T_) * n * BH, nP = static_cast<int64_t>(E) * T_ * BH;
    at::Tensor ws = workspaces().take(nV + nZ + nP, opts);
    at::Tensor V = ws.narrow(0, 0, nV).view({NV_, T_, B, H_});
    at::Tensor Z = ws.narrow(0, nV, nZ).view({T_, n, B, H_});
    at::Tensor P = ws.narrow(0, nV + nZ, nP).view({E, T_, B, H_});
    const T *xp = xp_.data_ptr<T>(), *W = W_.data_ptr<T>(), *bias = b_.data_ptr<T>(), *h0 = h0_.data_ptr<T>();
    T *hsp = hs.data_ptr<T>(), *Vp = V.data_ptr<T>(), *Zp = Z.data_ptr<T>(), *Pp = P.data_ptr<T>();
    std::vector<T> regs(static_cast<size_t>(std::max(max_regs_ - 1, 1)) * BH);
    if (T_ > 0)
      for (int s = 0; s < S_; ++s) std::memcpy(at_step(Vp, s, 0, d), h0 + s * BH, sizeof(T) * BH);
    for (int t = 0; t < T_; ++t) {
      T* Zt = Zp + static_cast<int64_t>(t) * n * BH;
      for (int s = 0; s < S_; ++s)
        if (group_of_value_[s] >= 0) project<T>(group_of_value_[s], t, d, Vp, W, Pp);
      for (int i = 0; i < n; ++i) {
        const Op& op = ops_[i];
        T* z = Zt + i * BH;
        const T* bi = op.bias >= 0 ? bias + static_cast<int64_t>(op.bias) * H_ : nullptr;
        for (size_t j = 0; j < op.terms.size(); ++j) {
          Ptr src = term_ptr<T>(op.terms[j], t, d, xp, Vp, Pp);
          const T* a = static_cast<const T*>(src.p);
          for (int r = 0; r < B; ++r) {
            T* zr = z + static_cast<int64_t>(r) * H_;
            const T* ar = a + r * src.stride;
            if (j == 0) {
              for (int h = 0; h < H_; ++h) zr[h] = ar[h];
            } else if (op.combine == 0) {
              for (int h = 0; h < H_; ++h) zr[h] += ar[h];
            } else if (op.combine == 1) {
              for (int h = 0; h < H_; ++h) zr[h] *= ar[h];
            } else {
              for (int h = 0; h < H_; ++h) zr[h] -= ar[h];
            }
          }
        }
        if (bi)
          for (int r = 0; r < B; ++r)
            for (int h = 0; h < H_; ++h) z[static_cast<int64_t>(r) * H_ + h] += bi[h];
        activation<T>(op, z, at_step(Vp, S_ + i, t, d), regs.data(), static_cast<int>(BH));
        if (group_of_value_[S_ + i] >= 0) project<T>(group_of_value_[S_ + i], t, d, Vp, W, Pp);
      }
      // the new states: the mean of their output values, into the next step's V (or `fin`)
      for (int s = 0; s < S_; ++s) {
        const auto& outs = outputs_[s];
        T* dst = t + 1 < T_ ? at_step(Vp, s, t + 1, d) : fin.data_ptr<T>() + s * BH;
        std::memcpy(dst, at_step(Vp, outs[0], t, d), sizeof(T) * BH);
        for (size_t j = 1; j < outs.size(); ++j) {
          const T* v = at_step(Vp, outs[j], t, d);
          for (int64_t e = 0; e < BH; ++e) dst[e] += v[e];
        }
        if (outs.size() > 1) {
          const T inv = T(1) / T(outs.size());
          for (int64_t e = 0; e < BH; ++e) dst[e] *= inv;
        }
        if (s == 0)
          for (int r = 0; r < B; ++r)
            std::memcpy(hsp + (static_cast<int64_t>(r) * T_ + t) * H_, dst + static_cast<int64_t>(r) * H_, sizeof(T) * H_);
      }
    }
    if (T_ == 0) fin.copy_(h0_);
    return {hs, fin, V, Z, P};
  }

  template <typename T>
  std::vector<at::Tensor> backward_t(const at::Tensor& V_, const at::Tensor& Z_, const at::Tensor& P_,
                                     const at::Tensor& xp_, const at::Tensor& W_, const at::Tensor& b_,
                                     const at::Tensor& dhs_, const at::Tensor& dfinal_) const {
    const int B = static_cast<int>(xp_.size(0)), T_ = static_cast<int>(xp_.size(1)), n = static_cast<int>(ops_.size());
    const int E = static_cast<int>(edge_src_.size());
    const int64_t BH = static_cast<int64_t>(B) * H_;
    const Dims d{B, T_, BH};
    at::Tensor dxp = at::zeros_like(xp_), dW = at::zeros_like(W_), db = at::zeros_like(b_);
    at::Tensor ds = dfinal_.clone();
    const T *V = V_.data_ptr<T>(), *Z = Z_.data_ptr<T>(), *P = P_.data_ptr<T>(), *xp = xp_.data_ptr<T>();
    const T *W = W_.data_ptr<T>(), *dhs = dhs_.data_ptr<T>();
    T *dxpp = dxp.data_ptr<T>(), *dWp = dW.data_ptr<T>(), *dbp = db.data_ptr<T>(), *dsp = ds.data_ptr<T>();
    // dV: this step's value gradients [NV, B, H]; dP: every step's edge-projection gradients (the
    // weight gradients are one GEMM per group after the loop, over all T B rows)
    const int64_t nregs = 2 * std::max(max_regs_ - 1, 1) * BH, ndP = static_cast<int64_t>(E) * T_ * BH;
    at::Tensor scratch = workspaces().take(NV_ * BH + 3 * BH + nregs + ndP, xp_.options());
    T* const dVp = scratch.data_ptr<T>();
    T* const dzp = dVp + NV_ * BH;
    T* const prodp = dzp + BH;
    T* const onesp = prodp + BH;
    T* const regsp = onesp + BH;
    T* const dPp = regsp + nregs;
    std::fill(onesp, onesp + BH, T(1));
    std::fill(dPp, dPp + ndP, T(0));
    const int KxH = nx_ * H_;
    for (int t = T_ - 1; t >= 0; --t) {
      const T* Zt = Z + static_cast<int64_t>(t) * n * BH;
      std::fill(dVp, dVp + NV_ * BH, T(0));
      // the gradient of each new state (from hs at this step and from the next step), to its outputs
      for (int s = 0; s < S_; ++s) {
        const auto& outs = outputs_[s];
        const T w = T(1) / T(outs.size());
        const T* g = dsp + s * BH;
        for (int o : outs) {
          T* dvo = dVp + o * BH;
          for (int64_t e = 0; e < BH; ++e) dvo[e] += w * g[e];
          if (s == 0)
            for (int r = 0; r < B; ++r) {
              const T* gh = dhs + (static_cast<int64_t>(r) * T_ + t) * H_;
              T* dr = dvo + static_cast<int64_t>(r) * H_;
              for (int h = 0; h < H_; ++h) dr[h] += w * gh[h];
            }
        }
      }
      auto close = [&](int g) {  // dV_src [B, H] += dP_g [B, kH] @ W_g [kH, H]
        const Group& gr = groups_[g];
        gemm<T>(false, false, B, H_, gr.k * H_, T(1), group_step(dPp, g, t, d), gr.k * H_,
                W + static_cast<int64_t>(gr.first) * H_ * H_, H_, T(1), dVp + gr.src * BH, H_);
      };
      for (int i = n - 1; i >= 0; --i) {
        const Op& op = ops_[i];
        const int idx = S_ + i;
        if (group_of_value_[idx] >= 0) close(group_of_value_[idx]);
        activation_backward<T>(op, Zt + i * BH, at_step(V, idx, t, d), dVp + idx * BH, dzp, regsp, onesp,
                               static_cast<int>(BH));
        if (op.bias >= 0) {
          T* dbi = dbp + static_cast<int64_t>(op.bias) * H_;
          for (int r = 0; r < B; ++r)
            for (int h = 0; h < H_; ++h) dbi[h] += dzp[static_cast<int64_t>(r) * H_ + h];
        }
        const int nt = static_cast<int>(op.terms.size());
        for (int j = 0; j < nt; ++j) {
          const Term& term = op.terms[j];
          // the term's gradient: dz, -dz (second term of sub), dz times the other factors (mul)
          const T* g = dzp;
          if (op.combine == 1 && nt > 1) {
            std::copy(dzp, dzp + BH, prodp);
            for (int jj = 0; jj < nt; ++jj) {
              if (jj == j) continue;
              Ptr o = term_ptr<T>(op.terms[jj], t, d, xp, V, P);
              const T* a = static_cast<const T*>(o.p);
              for (int r = 0; r < B; ++r)
                for (int h = 0; h < H_; ++h) prodp[static_cast<int64_t>(r) * H_ + h] *= a[r * o.stride + h];
            }
            g = prodp;
          }
          const T sgn = (op.combine == 2 && j == 1) ? T(-1) : T(1);
          T* dst;
          int64_t stride;
          if (term.kind == 0) {
            dst = dxpp + static_cast<int64_t>(t) * KxH + term.index * H_;
            stride = static_cast<int64_t>(T_) * KxH;
          } else if (term.kind == 1) {
            const int grp = edge_group_[term.index];
            dst = group_step(dPp, grp, t, d) + (term.index - groups_[grp].first) * H_;
            stride = static_cast<int64_t>(groups_[grp].k) * H_;
          } else {
            dst = dVp + term.index * BH;
            stride = H_;
          }
          for (int r = 0; r < B; ++r) {
            T* o = dst + r * stride;
            const T* gr = g + static_cast<int64_t>(r) * H_;
            for (int h = 0; h < H_; ++h) o[h] += sgn * gr[h];
          }
        }
      }
      for (int s = 0; s < S_; ++s)
        if (group_of_value_[s] >= 0) close(group_of_value_[s]);
      std::memcpy(dsp, dVp, sizeof(T) * S_ * BH);
    }
    // dW_g [kH, H] = sum over steps of dP_g^T V_src: one GEMM over all T B rows per group
    for (size_t g = 0; g < groups_.size() && T_ > 0; ++g) {
      const Group& gr = groups_[g];
      gemm<T>(true, false, gr.k * H_, H_, T_ * B, T(1), group_step(dPp, static_cast<int>(g), 0, d), gr.k * H_,
              at_step(V, gr.src, 0, d), H_, T(0), dWp + static_cast<int64_t>(gr.first) * H_ * H_, H_);
    }
    return {dxp, dW, db, ds};
  }
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "C++ CPU engine of a recurrent cell over a sequence (see kernels/recurrent/native.py)";
  pybind11::class_<Engine>(m, "Engine")
      .def(pybind11::init<const std::vector<int64_t>&>())
      .def("forward", &Engine::forward, pybind11::call_guard<pybind11::gil_scoped_release>())
      .def("backward", &Engine::backward, pybind11::call_guard<pybind11::gil_scoped_release>());
}
