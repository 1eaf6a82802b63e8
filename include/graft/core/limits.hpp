// graft — resource limits: every size read from a file (declared shapes, layer sizes in a config,
// JSON nesting, zip members, image dimensions) is checked against these before anything is
// allocated from it. The defaults admit every real model (ConvNeXtXLarge, 350 M parameters) and
// refuse sizes no real file has; raise a limit with graft::limits().<field> = ... (process-wide,
// set it before loading). Errors name the limit and this field.
//
// Also here: the checked size arithmetic every shape computation from a file goes through
// (a product that overflows 64 bits is an error, never a wrapped, too small allocation), and the
// weight budget of a model being built from a file (BuildBudgetScope).
#pragma once

#include <cstdint>
#include <string>

#include "graft/core/errors.hpp"

namespace graft {

struct Limits {
  /// Elements of one tensor (a weight, an activation, a dataset read from a file): 2^32.
  std::int64_t max_tensor_elements = std::int64_t(1) << 32;
  /// Total parameters of a model built from a config: 2^33 (32 GiB of float32).
  std::int64_t max_model_parameters = std::int64_t(1) << 33;
  /// One dimension of a shape, or one size in a layer config (units, filters, kernel size,
  /// strides, ...): 2^31 - 1. The product of two such values cannot overflow 64-bit arithmetic,
  /// which is what lets a layer compute its output shape from them without further checks.
  std::int64_t max_dimension = (std::int64_t(1) << 31) - 1;
  /// Nesting depth of a JSON config and of models nested in models.
  int max_config_depth = 256;
  /// Layers in one model config.
  std::int64_t max_layers = 1000000;
  /// Uncompressed size of one member of a .keras zip: 16 GiB.
  std::int64_t max_zip_member_bytes = std::int64_t(1) << 34;
  /// Pixels (width * height) of one decoded image: 2^28 (16384 x 16384).
  std::int64_t max_image_pixels = std::int64_t(1) << 28;
};

/// The process-wide limits (read at the moment a file is loaded).
inline Limits& limits() {
  static Limits l;
  return l;
}

namespace detail {

/// "above graft::limits().<field> = <value> (raise it ...)": the tail of every limit error.
inline std::string limit_hint(const char* field, std::int64_t value) {
  return cat("above graft::limits().", field, " = ", value, " (if the file is trusted, raise it with graft::limits().", field,
             " = ... before loading)");
}

/// a * b for a, b >= 0; false when the product does not fit in 64 bits.
inline bool checked_mul(std::int64_t a, std::int64_t b, std::int64_t* r) { return !__builtin_mul_overflow(a, b, r); }

/// Render dims "(2, 3)" without depending on tensor.hpp.
template <class Dims>
std::string dims_str(const Dims& dims) {
  std::string r = "(";
  bool first = true;
  for (auto d : dims) {
    r += first ? "" : ", ";
    first = false;
    r += d < 0 ? std::string("None") : std::to_string(static_cast<long long>(d));
  }
  return r + (dims.size() == 1 ? ",)" : ")");
}

/// Number of elements of a concrete shape (every dimension >= 0), computed without overflow and
/// checked against limits().max_tensor_elements; `what` names the tensor (layer, weight, HDF5
/// path) in the value_error otherwise.
template <class Dims>
std::int64_t checked_elements(const Dims& dims, const std::string& what) {
  std::int64_t n = 1;
  bool overflow = false;
  for (auto d : dims) {
    if (d < 0) throw value_error(cat(what, ": shape ", dims_str(dims), " has a negative dimension"));
    if (!checked_mul(n, static_cast<std::int64_t>(d), &n)) overflow = true;
  }
  // a zero dimension makes the tensor empty even when the other dimensions overflow
  for (auto d : dims)
    if (d == 0) return 0;
  if (overflow || n > limits().max_tensor_elements)
    throw value_error(cat(what, ": shape ", dims_str(dims), " has ", overflow ? std::string("more than 2^63") : std::to_string(n),
                          " elements, ", limit_hint("max_tensor_elements", limits().max_tensor_elements)));
  return n;
}

/// A symbolic shape (-1 = unknown) computed from a config: every known dimension at most
/// limits().max_dimension and the product of the known ones at most max_tensor_elements.
template <class Dims>
void check_symbolic_shape(const Dims& dims, const std::string& what) {
  std::int64_t n = 1;
  bool overflow = false, zero = false;
  for (auto d : dims) {
    if (d < 0) continue;
    if (static_cast<std::int64_t>(d) > limits().max_dimension)
      throw value_error(cat(what, ": shape ", dims_str(dims), " has the dimension ", static_cast<long long>(d), ", ",
                            limit_hint("max_dimension", limits().max_dimension)));
    zero = zero || d == 0;
    if (!checked_mul(n, static_cast<std::int64_t>(d), &n)) overflow = true;
  }
  if (!zero && (overflow || n > limits().max_tensor_elements))
    throw value_error(cat(what, ": shape ", dims_str(dims), " has ", overflow ? std::string("more than 2^63") : std::to_string(n),
                          " elements per call, ", limit_hint("max_tensor_elements", limits().max_tensor_elements)));
}

/// A size read from a config (units, filters, a kernel size, ...): in [0, limits().max_dimension].
inline std::int64_t check_size(long long v, const std::string& what) {
  if (v < 0) throw value_error(cat(what, " must be >= 0, got ", v));
  if (v > limits().max_dimension) throw value_error(cat(what, " is ", v, ", ", limit_hint("max_dimension", limits().max_dimension)));
  return static_cast<std::int64_t>(v);
}

/// The weights created on this thread while a model is being built from a config.
struct BuildBudget {
  std::int64_t params = 0;       ///< weight elements created so far
  std::int64_t file_bytes = -1;  ///< size of the file the weights will come from; -1: no file
  std::string file;              ///< that file, for messages
  int depth = 0;                 ///< models nested in models at the current point of the build
};

/// True while a model is built to be loaded (DeferredWeightInit): new weights keep their
/// initializer for later instead of running it (the file will overwrite them).
inline bool& defer_weight_init() {
  thread_local bool d = false;
  return d;
}
inline BuildBudget*& build_budget() {
  thread_local BuildBudget* b = nullptr;
  return b;
}

/// Called before a weight of `elements` elements is allocated (Layer::add_weight): counts it
/// against the model's total and the file's size when a BuildBudgetScope is active.
inline void count_new_weight(const std::string& what, std::int64_t elements) {
  BuildBudget* b = build_budget();
  if (!b) return;
  std::int64_t total = 0;
  bool overflow = __builtin_add_overflow(b->params, elements, &total);
  if (overflow || total > limits().max_model_parameters)
    throw value_error(cat(what, ": the model would have more than ", overflow ? b->params : total, " parameters, ",
                          limit_hint("max_model_parameters", limits().max_model_parameters)));
  // Each stored weight element takes at least one byte (int8; Keras stores float32, float16 or
  // bfloat16): a model whose weights exceed the file's bytes cannot be loaded from that file.
  if (b->file_bytes >= 0 && total > b->file_bytes)
    throw format_error(cat(what, ": the config declares ", total, " weight elements up to this layer, but ", b->file, " holds only ",
                           b->file_bytes, " bytes: the weights cannot be in the file (corrupt or hostile config); nothing was allocated"));
  b->params = total;
}

}  // namespace detail

/// While alive, the weights created on this thread keep their initialisation pending
/// (Param::pending_init) instead of running it: load_model builds the model this way, reads the
/// file into it, and then runs the initialisation of any weight the file did not supply
/// (Param::materialize). Each weight's seed is drawn when it is made, so the values are those an
/// immediate initialisation gives, and the global generator advances the same. Scopes nest.
class DeferredWeightInit {
 public:
  DeferredWeightInit() : saved_(detail::defer_weight_init()) { detail::defer_weight_init() = true; }
  ~DeferredWeightInit() { detail::defer_weight_init() = saved_; }
  DeferredWeightInit(const DeferredWeightInit&) = delete;
  DeferredWeightInit& operator=(const DeferredWeightInit&) = delete;

 private:
  bool saved_;
};

/// While alive, the weights created on this thread (by model_from_config, load_model) are
/// counted: their total must stay within limits().max_model_parameters and, with `file_bytes`
/// >= 0, within the size of the file the weights come from, checked before each allocation.
/// Scopes nest: an inner scope joins the outermost one (and only tightens its file bound).
class BuildBudgetScope {
 public:
  explicit BuildBudgetScope(std::int64_t file_bytes = -1, std::string file = {}) {
    detail::BuildBudget*& cur = detail::build_budget();
    if (!cur) {
      own_.file_bytes = file_bytes;
      own_.file = std::move(file);
      cur = &own_;
      owner_ = true;
    } else if (file_bytes >= 0 && (cur->file_bytes < 0 || file_bytes < cur->file_bytes)) {
      saved_bytes_ = cur->file_bytes;
      saved_file_ = cur->file;
      cur->file_bytes = file_bytes;
      cur->file = std::move(file);
      restore_ = true;
    }
  }
  ~BuildBudgetScope() {
    detail::BuildBudget*& cur = detail::build_budget();
    if (owner_) {
      cur = nullptr;
    } else if (restore_ && cur) {
      cur->file_bytes = saved_bytes_;
      cur->file = saved_file_;
    }
  }
  BuildBudgetScope(const BuildBudgetScope&) = delete;
  BuildBudgetScope& operator=(const BuildBudgetScope&) = delete;

 private:
  detail::BuildBudget own_;
  bool owner_ = false, restore_ = false;
  std::int64_t saved_bytes_ = -1;
  std::string saved_file_;
};

}  // namespace graft
