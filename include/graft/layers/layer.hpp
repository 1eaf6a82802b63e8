// graft — Layer<T>: the one abstraction every layer (and every model) implements, plus the
// symbolic "Keras tensors" that record layer calls to build Functional graphs.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <atomic>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "graft/core/config.hpp"
#include "graft/core/errors.hpp"
#include "graft/core/param.hpp"
#include "graft/core/random.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

using json = nlohmann::json;

template <class T>
class Layer;
template <class T>
struct Node;

/// A symbolic tensor: output `index` of a recorded layer call (Keras' KerasTensor).
template <class T>
struct KerasTensor {
  std::shared_ptr<Node<T>> node;
  int index = 0;

  const Shape& shape() const;
  Layer<T>* layer() const;
  explicit operator bool() const { return static_cast<bool>(node); }
  bool operator==(const KerasTensor& o) const { return node == o.node && index == o.index; }
};

/// One call of a layer on symbolic inputs.
template <class T>
struct Node {
  std::shared_ptr<Layer<T>> layer;
  std::vector<KerasTensor<T>> inputs;
  std::vector<Shape> output_shapes;
  bool list_call = false;  ///< called with a list of tensors (merge layers)

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Releases a chain of calls without recursion: the default destructor would recurse once
  /// per node through `inputs` and overflow the stack on a 100 000-layer model. The inputs of a
  /// node are taken only when this is its last owner, so graphs shared with other models stay.
  ~Node() {
    std::vector<std::shared_ptr<Node>> pending;
    for (auto& in : inputs)
      if (in.node) pending.push_back(std::move(in.node));
    while (!pending.empty()) {
      std::shared_ptr<Node> n = std::move(pending.back());
      pending.pop_back();
      if (n.use_count() == 1)
        for (auto& in : n->inputs)
          if (in.node) pending.push_back(std::move(in.node));
    }  // each n is released with its inputs already moved out
  }
};

template <class T>
const Shape& KerasTensor<T>::shape() const {
  return node->output_shapes.at(static_cast<size_t>(index));
}
template <class T>
Layer<T>* KerasTensor<T>::layer() const {
  return node ? node->layer.get() : nullptr;
}

/// Per-call scratch state a layer keeps between forward and backward (masks, caches...).
struct CallState {
  virtual ~CallState() = default;
};

namespace detail {
/// Bumped whenever any layer's `trainable` flag changes, so cached gradient plans refresh.
inline std::atomic<unsigned long>& trainable_generation() {
  static std::atomic<unsigned long> g{1};
  return g;
}
}  // namespace detail

template <class T>
using In = std::vector<const Tensor<T>*>;
template <class T>
using Out = std::vector<Tensor<T>*>;

namespace detail {
/// keras.src.utils.naming.to_snake_case
inline std::string to_snake_case(const std::string& s) {
  std::string a;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') a += c;
  // (.)([A-Z][a-z]+) -> \1_\2
  std::string b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(a[i])) && i + 1 < a.size() &&
        std::islower(static_cast<unsigned char>(a[i + 1])))
      b += '_';
    b += a[i];
  }
  // ([a-z])([A-Z]) -> \1_\2
  std::string c;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(b[i])) &&
        std::islower(static_cast<unsigned char>(b[i - 1])))
      c += '_';
    c += static_cast<char>(std::tolower(static_cast<unsigned char>(b[i])));
  }
  // collapse doubled underscores produced by both rules
  std::string d;
  for (char ch : c)
    if (!(ch == '_' && !d.empty() && d.back() == '_')) d += ch;
  return d;
}

/// Names given explicitly (constructor, set_name, loaded files). Auto names avoid them, as
/// TF-Keras's observe_object_name does: a Dense() created after loading a model whose layers are
/// "dense", "dense_1" gets "dense_2", so it can join those layers in one model.
struct NameRegistry {
  std::mutex m;
  std::map<std::string, int> counters;
  std::set<std::string> observed;
};
inline NameRegistry& name_registry() {
  static NameRegistry r;
  return r;
}
inline void observe_name(const std::string& name) {
  if (name.empty()) return;
  auto& r = name_registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (r.observed.size() < 1000000) r.observed.insert(name);  // bounded
}

/// Keras-style unique names: "dense", "dense_1", "dense_2", ... skipping observed names.
inline std::string unique_name(const std::string& base) {
  auto& r = name_registry();
  std::lock_guard<std::mutex> lock(r.m);
  int& k = r.counters[base];
  for (;;) {
    std::string c = k == 0 ? base : base + "_" + std::to_string(k);
    ++k;
    if (!r.observed.count(c)) return c;
  }
}

/// The calling thread's Shape to assemble an output shape in without allocating: a layer's
/// forward may run on several threads at once (predict's row slices), so it is not a member.
inline Shape& shape_scratch() {
  thread_local Shape s;
  return s;
}

inline json shape_json(const Shape& s) {
  json a = json::array();
  for (Index d : s) a.push_back(d < 0 ? json(nullptr) : json(d));
  return a;
}
}  // namespace detail

/// Base class of all layers. Layers are always owned by std::shared_ptr (models share them,
/// exactly as Keras shares layer objects between models).
template <class T>
class Layer : public std::enable_shared_from_this<Layer<T>> {
 public:
  explicit Layer(std::string name = {}) : name_(std::move(name)) { detail::observe_name(name_); }
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;
  virtual ~Layer() = default;

  /// Keras class name, e.g. "Dense".
  virtual std::string class_name() const = 0;

  /// The layer name; a Keras-style unique one ("dense_3") is chosen when none was given.
  const std::string& name() const {
    if (name_.empty()) name_ = detail::unique_name(detail::to_snake_case(class_name()));
    return name_;
  }
  void set_name(std::string n) {
    name_ = std::move(n);
    detail::observe_name(name_);
  }

  /// Keras `trainable`. Setting it on a model sets it on every layer inside, as in Keras.
  bool trainable() const { return trainable_; }
  virtual void set_trainable(bool t) {
    trainable_ = t;
    ++detail::trainable_generation();
  }

  /// Discriminative learning rates: the optimizer steps this layer's weights (a model's: every
  /// layer's inside) with learning_rate * m; 0 leaves them unchanged. value_error for a negative
  /// or non-finite m.
  virtual void set_lr_multiplier(double m) {
    if (!(m >= 0) || !std::isfinite(m))
      throw value_error(detail::cat("layer '", name(), "': the learning-rate multiplier must be finite and >= 0, got ", m));
    lr_multiplier_ = m;
    for (auto& p : params_) p->lr_multiplier = m;
  }
  double lr_multiplier() const { return lr_multiplier_; }
  /// The random generator of a stochastic layer (Dropout, GaussianNoise, ...), so that checkpoints
  /// can save and restore it; nullptr for deterministic layers.
  virtual Rng* random_generator() { return nullptr; }

  virtual bool is_model() const { return false; }
  /// An operation node (keras.src.ops, TF-Keras TFOpLambda) rather than a layer: see Operation.
  virtual bool is_operation() const { return false; }
  /// For operations, the call's positional arguments: null for each tensor input in order, a
  /// number for each constant. null for layers (their inputs are the call's only argument).
  virtual json call_arguments() const { return nullptr; }
  /// Layers taking a list of tensors (Add, Concatenate, ...) return true.
  virtual bool multi_input() const { return false; }

  // ---- shapes and building -------------------------------------------------------------------
  bool built() const { return built_; }
  /// Shapes (with batch dimension, -1 unknown) the layer was built for.
  const std::vector<Shape>& build_input_shapes() const { return build_shapes_; }
  /// Create the weights for these input shapes (once).
  void build(const std::vector<Shape>& input_shapes) {
    if (built_) return;
    build_impl(input_shapes);
    build_shapes_ = input_shapes;
    built_ = true;
  }
  /// Output shapes for the given input shapes; throws shape_error naming the layer when they do
  /// not fit. Works with symbolic (-1) dimensions.
  virtual std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const = 0;

  // ---- execution --------------------------------------------------------------------------------
  virtual std::unique_ptr<CallState> make_state() const { return nullptr; }
  /// Compute outputs (resizing them) from inputs. `training` selects training behaviour
  /// (dropout, batch statistics).
  virtual void forward(const In<T>& in, const Out<T>& out, CallState* state, bool training) = 0;
  /// Given the forward inputs/outputs and dLoss/doutputs, write dLoss/dinputs into the non-null
  /// entries of `din` (resizing them) and, when the layer is trainable, the weight gradients
  /// (Param::begin_grad decides overwrite or accumulate).
  virtual void backward(const In<T>& in, const In<T>& out, const In<T>& dout, const Out<T>& din,
                        CallState* state) = 0;
  /// True when forward(..., training) computes every sample (row of the first axis) from that
  /// sample alone, deterministically, and writes nothing outside its outputs and its CallState.
  /// Batches may then be cut into row slices run through the model on several threads at once:
  /// predict() and evaluate() (training == false), and in fit() the layers below the lowest
  /// trainable one (training == true). graft's layers say when it holds (Dropout, for instance,
  /// only in inference); a custom layer keeps false unless it meets these conditions (its
  /// model then runs each batch whole, as before). A subclass that changes forward must check
  /// that it still holds.
  virtual bool parallel_rows(bool /*training*/) const { return false; }

  // ---- inference fusion (Model::predict, evaluate; see Model's "fusion" notes) --------------------
  /// Output ranges: a function applied in place to each range [begin, end) of whole rows of this
  /// layer's output as soon as the layer has computed it, while it is in cache, in later
  /// forward calls on `st` (empty: none). Returns false when the layer cannot (the default).
  using Epilogue = std::function<void(T* y, Index begin, Index end)>;
  virtual bool set_output_epilogue(CallState* /*st*/, Epilogue /*post*/) { return false; }
  /// Element-wise layers: whether forward in inference (training == false) on an input of shape
  /// `in` is a function of each value and its channel (the last axis) alone, so that it can run
  /// in place on ranges of whole rows (inplace_inference); prepares `st` for those calls.
  virtual bool prepare_inplace_inference(CallState* /*st*/, const Shape& /*in*/) { return false; }
  /// y[begin, end) (whole rows) replaced in place by this layer's inference output, bit for bit
  /// what forward gives. Only after prepare_inplace_inference returned true for this call.
  virtual void inplace_inference(T* /*y*/, Index /*begin*/, Index /*end*/, CallState* /*st*/) const {}

  // ---- weights ------------------------------------------------------------------------------------
  /// All weights in Keras `layer.weights` order.
  virtual void collect_weights(std::vector<Param<T>*>& out) {
    for (auto& p : params_) out.push_back(p.get());
  }
  std::vector<Param<T>*> weights() {
    std::vector<Param<T>*> w;
    collect_weights(w);
    return w;
  }
  /// Keras trainable_weights: empty when the layer is frozen (models: see Model).
  virtual std::vector<Param<T>*> trainable_weights() {
    std::vector<Param<T>*> r;
    if (!trainable_) return r;
    for (Param<T>* p : weights())
      if (effective_trainable(*p)) r.push_back(p);
    return r;
  }
  /// Keras non_trainable_weights: the weights not in trainable_weights() (everything when frozen).
  std::vector<Param<T>*> non_trainable_weights() {
    std::vector<Param<T>*> t = trainable_weights();
    std::unordered_set<Param<T>*> ts(t.begin(), t.end());
    std::vector<Param<T>*> r;
    for (Param<T>* p : weights())
      if (!ts.count(p)) r.push_back(p);
    return r;
  }
  /// Whether any weight would be updated by training (no allocation: used on the hot path).
  virtual bool has_trainable_weights() const {
    if (!trainable_) return false;
    for (const auto& p : params_)
      if (p->trainable) return true;
    return false;
  }
  Index count_params() {
    Index n = 0;
    for (Param<T>* p : weights()) n += p->value.size();
    return n;
  }
  std::vector<Tensor<T>> get_weights() {
    std::vector<Tensor<T>> r;
    for (Param<T>* p : weights()) r.push_back(p->value);
    return r;
  }
  /// Set weights in get_weights() order; every shape must match.
  void set_weights(const std::vector<Tensor<T>>& ws) {
    auto ps = weights();
    if (ws.size() != ps.size())
      throw value_error(detail::cat("layer '", name(), "' (", class_name(), "): set_weights got ", ws.size(),
                                    " arrays, the layer has ", ps.size(), " weights"));
    for (size_t i = 0; i < ps.size(); ++i)
      if (ws[i].shape() != ps[i]->value.shape())
        throw shape_error(detail::cat("layer '", name(), "' (", class_name(), "): weight '",
                                      ps[i]->owner && ps[i]->owner != this ? ps[i]->owner->name() + "/" : std::string(),
                                      ps[i]->name, "' (index ", i, ") has shape ", shape_str(ps[i]->value.shape()),
                                      ", the new value has shape ", shape_str(ws[i].shape())));
    for (size_t i = 0; i < ps.size(); ++i) ps[i]->value = ws[i];
  }

  // ---- config -------------------------------------------------------------------------------------
  /// Keras layer config (TF-Keras 2 dialect, which Keras 3 also reads).
  virtual json get_config() const { return base_config(); }
  json base_config() const {
    return json{{"name", name()}, {"trainable", trainable_}, {"dtype", "float32"}};
  }

  // ---- symbolic calls (Functional API) -------------------------------------------------------------
  /// Call on one symbolic tensor; returns the (first) output.
  KerasTensor<T> operator()(const KerasTensor<T>& x) { return call({x}, false).at(0); }
  /// Call on a list of symbolic tensors (merge layers).
  KerasTensor<T> operator()(const std::vector<KerasTensor<T>>& xs) { return call(xs, true).at(0); }
  /// General call: builds the layer if needed, records a node, returns every output.
  std::vector<KerasTensor<T>> call(const std::vector<KerasTensor<T>>& xs, bool list_call) {
    std::shared_ptr<Layer<T>> self;
    try {
      self = this->shared_from_this();
    } catch (const std::bad_weak_ptr&) {
      throw value_error(detail::cat("layer '", name(), "' must be owned by a std::shared_ptr to be called"));
    }
    if (xs.empty()) throw value_error(detail::cat("layer '", name(), "' called without inputs"));
    std::vector<Shape> shapes;
    for (const auto& x : xs) {
      if (!x) throw value_error(detail::cat("layer '", name(), "' called on an empty tensor"));
      shapes.push_back(x.shape());
    }
    if (multi_input() && !list_call && xs.size() == 1)
      throw value_error(detail::cat("layer '", name(), "' (", class_name(), ") expects a list of inputs"));
    if (!multi_input() && xs.size() != 1 && !is_model())
      throw value_error(detail::cat("layer '", name(), "' (", class_name(), ") takes one input, got ", xs.size()));
    for (const auto& s : shapes) detail::check_symbolic_shape(s, detail::cat(where(), ": input"));
    build(shapes);
    inbound_.erase(std::remove_if(inbound_.begin(), inbound_.end(), [](const auto& w) { return w.expired(); }),
                   inbound_.end());
    auto node = std::make_shared<Node<T>>();
    node->layer = self;
    node->inputs = xs;
    node->output_shapes = compute_output_shapes(shapes);
    for (const auto& s : node->output_shapes) detail::check_symbolic_shape(s, detail::cat(where(), ": output"));
    node->list_call = list_call;
    inbound_.push_back(node);
    std::vector<KerasTensor<T>> r;
    for (size_t i = 0; i < node->output_shapes.size(); ++i) r.push_back({node, static_cast<int>(i)});
    return r;
  }
  /// Nodes (calls) of this layer that still exist, oldest first.
  std::vector<std::shared_ptr<Node<T>>> inbound_nodes() const {
    std::vector<std::shared_ptr<Node<T>>> r;
    for (auto& w : inbound_)
      if (auto n = w.lock()) r.push_back(n);
    return r;
  }

  // ---- regularization and constraints -------------------------------------------------------
  /// Sum of the regularization penalties of this layer's trainable weights; when add_grads,
  /// also adds their gradients to the weights' gradients.
  virtual double regularization_loss(bool add_grads) {
    double s = 0;
    if (!trainable_) return s;
    for (auto& p : params_) {
      if (!p->trainable) continue;
      if (p->regularizer.active()) {
        s += p->regularizer.penalty(p->value);
        if (add_grads) {
          if (p->begin_grad()) p->grad.set_zero();
          p->regularizer.add_gradient(p->value, p->grad);
        }
      }
      if (p->sp_anchor && p->sp_alpha != 0.0) {  // L2-SP: alpha/2 ||w - w0||^2
        const Tensor<T>& w0 = *p->sp_anchor;
        s += 0.5 * p->sp_alpha * static_cast<double>((p->value.array() - w0.array()).square().sum());
        if (add_grads) {
          if (p->begin_grad()) p->grad.set_zero();
          p->grad.array() += static_cast<T>(p->sp_alpha) * (p->value.array() - w0.array());
        }
      } else if (!p->sp_anchor && p->sp_beta != 0.0) {  // beta/2 ||w||^2 on new layers
        s += 0.5 * p->sp_beta * static_cast<double>(p->value.array().square().sum());
        if (add_grads) {
          if (p->begin_grad()) p->grad.set_zero();
          p->grad.array() += static_cast<T>(p->sp_beta) * p->value.array();
        }
      }
    }
    return s;
  }

 protected:
  virtual void build_impl(const std::vector<Shape>&) {}

  /// Create a weight, initialised now.
  Param<T>& add_weight(const std::string& name, const Shape& shape, const Initializer& init,
                       bool trainable = true, Regularizer reg = {}, Constraint cons = {}) {
    // sizes come from configs: checked (overflow, limits, the file's size) before allocating
    if (std::all_of(shape.begin(), shape.end(), [](Index d) { return d >= 0; })) {  // (symbolic: resize says so)
      const std::string what = detail::cat(where(), ": weight '", name, "'");
      detail::count_new_weight(what, detail::checked_elements(shape, what));
    }
    auto p = std::make_unique<Param<T>>();
    p->name = name;
    p->value.resize(shape);
    const std::uint64_t seed = next_seed();  // drawn either way: the same values later as now
    if (detail::defer_weight_init()) {       // the model is being loaded: the file will supply it
      p->pending_init = [init, seed](Tensor<T>& v) {
        Rng rng(seed);
        init(v, rng);
      };
    } else {
      Rng rng(seed);
      init(p->value, rng);
    }
    p->trainable = trainable;
    p->regularizer = reg;
    p->constraint = cons;
    p->owner = this;
    p->lr_multiplier = lr_multiplier_;
    params_.push_back(std::move(p));
    return *params_.back();
  }
  Param<T>* find_param(const std::string& n) {
    for (auto& p : params_)
      if (p->name == n) return p.get();
    return nullptr;
  }
  bool effective_trainable(const Param<T>& p) const {
    return p.trainable && (p.owner == nullptr || p.owner->trainable());
  }

  /// "layer 'dense_1' (Dense)" for messages.
  std::string where() const { return detail::cat("layer '", name(), "' (", class_name(), ")"); }

  /// Throw unless `n` inputs were given.
  void expect_inputs(const std::vector<Shape>& in, size_t n) const {
    if (in.size() != n)
      throw shape_error(detail::cat(where(), ": expects ", n, " input(s), got ", in.size()));
  }

  std::vector<std::unique_ptr<Param<T>>> params_;
  mutable std::string name_;
  bool trainable_ = true;
  double lr_multiplier_ = 1.0;
  bool built_ = false;
  std::vector<Shape> build_shapes_;
  std::vector<std::weak_ptr<Node<T>>> inbound_;
};

/// Convenience base for single-input, single-output layers.
template <class T>
class UnaryLayer : public Layer<T> {
 public:
  using Layer<T>::Layer;

  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const final {
    this->expect_inputs(in, 1);
    return {output_shape(in[0])};
  }
  void forward(const In<T>& in, const Out<T>& out, CallState* st, bool training) final {
    forward1(*in[0], *out[0], st, training);
  }
  void backward(const In<T>& in, const In<T>& out, const In<T>& dout, const Out<T>& din,
                CallState* st) final {
    backward1(*in[0], *out[0], *dout[0], din[0], st);
  }

  virtual Shape output_shape(const Shape& in) const = 0;
  virtual void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) = 0;
  /// dx may be null (input gradient not needed).
  virtual void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx,
                         CallState* st) = 0;
};

/// "layer 'name' (Class)" for a config being read.
inline std::string config_where(const json& cfg, const std::string& cls) {
  std::string n = cfg.is_object() && cfg.contains("name") && cfg["name"].is_string() ? cfg["name"].get<std::string>() : "?";
  return detail::cat("layer '", n, "' (", cls, ")");
}

/// Apply the keys every layer has (name, trainable).
template <class T>
void apply_base_config(Layer<T>& layer, const Config& c) {
  if (c.has("name")) layer.set_name(c.get_string("name", ""));
  layer.set_trainable(c.get_bool("trainable", true));
}

/// Make a layer: graft::make<graft::Dense>(64, "relu") -> std::shared_ptr<Dense<float>>.
template <template <class> class L, class T = float, class... A>
std::shared_ptr<L<T>> make(A&&... args) {
  return std::make_shared<L<T>>(std::forward<A>(args)...);
}

}  // namespace graft
