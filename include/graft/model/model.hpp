// graft — Model<T>: a DAG of layer calls (Keras "Functional"), Sequential<T> as the chain case.
// A model is itself a Layer, so models nest. Training (compile / fit / evaluate / predict) lives
// here too; losses, metrics and optimizers come from graft/train.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graft/layers/input_layer.hpp"
#include "graft/layers/layer.hpp"
#include "graft/model/fusion.hpp"
#include "graft/train/fit.hpp"
#include "graft/train/loop.hpp"
#include "graft/train/losses.hpp"
#include "graft/train/metrics.hpp"
#include "graft/train/optimizers.hpp"

namespace graft {

template <class T>
class Model;

/// The compile state of a model (what Keras keeps from compile()).
template <class T>
struct CompileState {
  std::shared_ptr<Optimizer<T>> optimizer;
  std::vector<std::shared_ptr<Loss<T>>> losses;  ///< one per output (null: no loss)
  std::vector<double> loss_weights;              ///< one per output
  std::vector<std::vector<json>> metrics;        ///< identifiers per output
};

template <class T = float>
class Model : public Layer<T> {
 public:
  /// A Functional model from symbolic inputs to symbolic outputs (keras.Model(inputs, outputs)).
  Model(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs, std::string name = {})
      : Layer<T>(std::move(name)) {
    init_graph(inputs, outputs);
  }
  Model(const KerasTensor<T>& input, const KerasTensor<T>& output, std::string name = {})
      : Model(std::vector<KerasTensor<T>>{input}, std::vector<KerasTensor<T>>{output}, std::move(name)) {}
  Model(const KerasTensor<T>& input, const std::vector<KerasTensor<T>>& outputs, std::string name = {})
      : Model(std::vector<KerasTensor<T>>{input}, outputs, std::move(name)) {}
  Model(const std::vector<KerasTensor<T>>& inputs, const KerasTensor<T>& output, std::string name = {})
      : Model(inputs, std::vector<KerasTensor<T>>{output}, std::move(name)) {}

  std::string class_name() const override { return "Functional"; }
  bool is_model() const override { return true; }
  bool multi_input() const override { return in_nodes_.size() > 1; }

  // ---- structure -------------------------------------------------------------------------------
  /// Keras model.layers (Functional: InputLayers included; Sequential: not).
  const std::vector<std::shared_ptr<Layer<T>>>& layers() const { return layers_; }
  /// Find a layer by name (value_error when absent).
  std::shared_ptr<Layer<T>> get_layer(const std::string& name) const {
    for (const auto& l : layers_)
      if (l->name() == name) return l;
    std::string known;
    for (const auto& l : layers_) known += (known.empty() ? "" : ", ") + l->name();
    throw value_error(detail::cat("model '", this->name(), "' has no layer named '", name, "' (layers: ", known, ")"));
  }
  /// Layer by position in layers(); negative counts from the end.
  std::shared_ptr<Layer<T>> get_layer(Index index) const {
    Index n = static_cast<Index>(layers_.size());
    Index i = index < 0 ? index + n : index;
    if (i < 0 || i >= n)
      throw value_error(detail::cat("model '", this->name(), "': layer index ", index, " out of range (", n, " layers)"));
    return layers_[static_cast<size_t>(i)];
  }
  const std::vector<KerasTensor<T>>& inputs() const { return inputs_; }
  const std::vector<KerasTensor<T>>& outputs() const { return outputs_; }
  size_t num_inputs() const { return in_nodes_.size(); }
  size_t num_outputs() const { return out_refs_.size(); }
  /// Names of the layers producing the outputs (Keras output_names).
  std::vector<std::string> output_names() const {
    std::vector<std::string> r;
    for (auto& o : out_refs_) r.push_back(g_[static_cast<size_t>(o.first)].layer->name());
    return r;
  }
  /// The `keras_version` of the file the model was loaded from ("" when built in graft): a
  /// model goes back to the Keras generation it came from unless SaveOptions says otherwise.
  const std::string& source_keras_version() const { return source_keras_version_; }
  void set_source_keras_version(std::string v) { source_keras_version_ = std::move(v); }
  /// Keras 3 keeps the structure given to Model(inputs, outputs): a single input or output given
  /// as a list of one stays a list in its config (read from Keras 3 files, written back so).
  bool inputs_listed() const { return inputs_listed_; }
  bool outputs_listed() const { return outputs_listed_; }
  void set_io_listed(bool inputs, bool outputs) {
    inputs_listed_ = inputs;
    outputs_listed_ = outputs;
  }
  /// Symbolic output of `layer_name`'s call inside this model: use it to build a model that ends
  /// at an inner layer (feature extraction), e.g. Model(m.inputs(), m.layer_output("flatten")).
  KerasTensor<T> layer_output(const std::string& layer_name, int index = 0) const {
    for (const auto& gn : g_)
      if (gn.layer->name() == layer_name) {
        if (index < 0 || index >= static_cast<int>(gn.node->output_shapes.size()))
          throw value_error(detail::cat("layer '", layer_name, "' has no output ", index));
        return KerasTensor<T>{gn.node, index};
      }
    get_layer(layer_name);  // throws with the list of layers
    throw value_error(detail::cat("layer '", layer_name, "' is not called in model '", this->name(), "'"));
  }
  /// Symbolic input of `layer_name`'s call inside this model.
  KerasTensor<T> layer_input(const std::string& layer_name, int index = 0) const {
    for (const auto& gn : g_)
      if (gn.layer->name() == layer_name) {
        if (gn.node->inputs.empty()) return KerasTensor<T>{gn.node, 0};
        return gn.node->inputs.at(static_cast<size_t>(index));
      }
    get_layer(layer_name);
    throw value_error(detail::cat("layer '", layer_name, "' is not called in model '", this->name(), "'"));
  }
  /// Batch shapes of the inputs / outputs ((None, ...)).
  std::vector<Shape> input_shapes() const {
    std::vector<Shape> r;
    for (auto& t : inputs_) r.push_back(t.shape());
    return r;
  }
  std::vector<Shape> output_shapes() const {
    std::vector<Shape> r;
    for (auto& t : outputs_) r.push_back(t.shape());
    return r;
  }
  /// Output shape of a layer's call in this model (for summaries).
  std::vector<Shape> layer_output_shapes(const Layer<T>* l) const {
    for (const auto& gn : g_)
      if (gn.layer == l) return gn.node->output_shapes;
    return {};
  }
  /// Layers feeding a layer's (first) call in this model, as "name[node][tensor]".
  std::vector<std::string> inbound_layer_names(const Layer<T>* l) const {
    std::vector<std::string> r;
    for (const auto& gn : g_)
      if (gn.layer == l) {
        for (auto& pr : gn.in) r.push_back(g_[static_cast<size_t>(pr.first)].layer->name());
        break;
      }
    return r;
  }

  /// A model's multiplier is set on every layer inside (recursively).
  void set_lr_multiplier(double m) override {
    Layer<T>::set_lr_multiplier(m);
    for (auto& l : layers_) l->set_lr_multiplier(m);
  }

  // ---- trainable ---------------------------------------------------------------------------------
  /// Keras: setting trainable on a model sets it on every layer inside (recursively).
  void set_trainable(bool t) override {
    Layer<T>::set_trainable(t);
    for (auto& l : layers_) l->set_trainable(t);
    ++detail::trainable_generation();
  }
  /// Fine-tuning helper: layers before `layer_name` frozen, it and every later layer trainable
  /// (the Keras recipe "for layer in conv_base.layers: if layer.name == 'block5_conv1': ...").
  void set_trainable_from(const std::string& layer_name) {
    get_layer(layer_name);
    bool on = false;
    Layer<T>::set_trainable(true);
    for (auto& l : layers_) {
      if (l->name() == layer_name) on = true;
      l->set_trainable(on);
    }
    ++detail::trainable_generation();
  }
  /// Freeze every layer up to and including `layer_name` (the rest trainable).
  void freeze_up_to(const std::string& layer_name) {
    get_layer(layer_name);
    bool frozen = true;
    Layer<T>::set_trainable(true);
    for (auto& l : layers_) {
      l->set_trainable(!frozen);
      if (l->name() == layer_name) frozen = false;
    }
    ++detail::trainable_generation();
  }

  // ---- weights -------------------------------------------------------------------------------------
  void collect_weights(std::vector<Param<T>*>& out) override {
    std::unordered_set<Param<T>*> seen(out.begin(), out.end());
    std::vector<Param<T>*> tmp;
    for (auto& l : layers_) {
      tmp.clear();
      l->collect_weights(tmp);
      for (Param<T>* p : tmp)
        if (seen.insert(p).second) out.push_back(p);
    }
  }
  /// The trainable weights of the layers inside; none while this model is frozen, even for layers
  /// inside whose own flag was set back to true afterwards (e.g. set_trainable_from on a model
  /// nested in a frozen one): TF-Keras 2's rule. Training, which updates trainable_weights(),
  /// then leaves them alone, and summary() counts them as non-trainable.
  std::vector<Param<T>*> trainable_weights() override {
    std::vector<Param<T>*> r;
    if (!this->trainable()) return r;
    std::unordered_set<Param<T>*> seen;
    for (auto& l : layers_)
      for (Param<T>* p : l->trainable_weights())
        if (seen.insert(p).second) r.push_back(p);
    return r;
  }
  bool has_trainable_weights() const override {
    if (!this->trainable()) return false;
    for (const auto& l : layers_)
      if (l->has_trainable_weights()) return true;
    return false;
  }
  double regularization_loss(bool add_grads) override {
    if (!this->trainable()) return 0.0;
    double s = 0;
    for (Layer<T>* l : cached_unique_layers()) s += l->regularization_loss(add_grads);
    return s;
  }

  // ---- execution as a layer (nested models) ---------------------------------------------------------
  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const override {
    if (in.size() != in_nodes_.size())
      throw shape_error(detail::cat("model '", this->name(), "' expects ", in_nodes_.size(), " input(s), got ", in.size()));
    std::vector<std::vector<Shape>> shp(g_.size());
    for (size_t i = 0; i < in_nodes_.size(); ++i) {
      check_shape(i, in[i], true);
      Shape s = in[i];
      const Shape& ref = inputs_[i].shape();
      for (size_t d = 0; d < s.size() && d < ref.size(); ++d)
        if (s[d] < 0) s[d] = ref[d];
      shp[static_cast<size_t>(in_nodes_[i])] = {s};
    }
    propagate_shapes(shp, [](size_t, const std::vector<Shape>&) {});
    std::vector<Shape> r;
    for (auto& o : out_refs_) r.push_back(shp[static_cast<size_t>(o.first)].at(static_cast<size_t>(o.second)));
    return r;
  }

  /// Output shapes of every graph node, given those of the input nodes in `shp`; visit(n, input
  /// shapes of node n) after each node.
  template <class F>
  void propagate_shapes(std::vector<std::vector<Shape>>& shp, F&& visit) const {
    for (size_t n = 0; n < g_.size(); ++n) {
      const auto& gn = g_[n];
      if (gn.input_slot >= 0) continue;
      std::vector<Shape> ins;
      for (auto& pr : gn.in) ins.push_back(shp[static_cast<size_t>(pr.first)].at(static_cast<size_t>(pr.second)));
      shp[n] = gn.layer->compute_output_shapes(ins);
      visit(n, ins);
    }
  }

  /// Everything one execution of the graph needs: activations, gradients, layer scratch.
  struct Run : CallState {
    bool planned = false;
    std::vector<std::vector<Tensor<T>>> val, grad;
    std::vector<std::vector<Tensor<T>>> scratch;  // [consumer][slot]
    std::vector<std::unique_ptr<CallState>> st;
    std::vector<In<T>> fin, outs_c, bdout;
    std::vector<Out<T>> fout, bdin;
    std::vector<const Tensor<T>*> input_ptr;
    std::vector<char> need, has_tw;
    unsigned long tw_generation = 0;
    // inference fusion (model/fusion.hpp): planned at the first fused run; `fusing` says whether
    // the last run fused (then ptr() reads a chain member's output from its head's tensor)
    bool fusing = false, fusion_planned = false;
    std::vector<std::vector<int>> chain;
    std::vector<int> alias;
    struct FuseCtx {
      const Model* model;
      Run* run;
      int node;
    };
    std::vector<FuseCtx> fuse_ctx;
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<Run>(); }

  /// Scratch of one inference (or of fit's row slices): a Run, the row slices' runs and buffers.
  /// The model keeps one for predict/evaluate and one for training; the const predict makes its
  /// own, so that any number of threads can run it at once on one model.
  struct InferScratch {
    Run run;
    std::vector<Run> slices;
    std::vector<Tensor<T>> x, y;
    In<T> ptrs;
    std::vector<const Tensor<T>*> out;
    std::vector<std::vector<Tensor<T>>> slice_x;
    std::vector<In<T>> slice_ptrs;
    std::vector<std::exception_ptr> slice_err;
    std::vector<Shape> slice_shapes;
  };

  void forward(const In<T>& in, const Out<T>& out, CallState* st, bool training) override {
    auto& run = *static_cast<Run*>(st);
    run_forward(run, in, training);
    for (size_t j = 0; j < out_refs_.size(); ++j) {
      const Tensor<T>* y = output_ptr(run, j);
      out[j]->resize(y->shape());
      std::copy(y->begin(), y->end(), out[j]->begin());
    }
  }
  void backward(const In<T>&, const In<T>&, const In<T>& dout, const Out<T>& din, CallState* st) override {
    run_backward(*static_cast<Run*>(st), dout, din);
  }

  /// Run the graph on inputs (no batching). Returns pointers into `run` (valid until its next use).
  /// With `only`, just the nodes marked there (their inputs must be ready).
  void run_forward(Run& run, const In<T>& in, bool training, const std::vector<char>* only = nullptr) const {
    if (!run.planned) plan(run);
    if (in.size() != in_nodes_.size())
      throw shape_error(detail::cat("model '", this->name(), "' expects ", in_nodes_.size(), " input(s), got ", in.size()));
    for (size_t i = 0; i < in.size(); ++i) {
      check_shape(i, in[i]->shape(), false);
      run.input_ptr[i] = in[i];
    }
    run_nodes(run, training, only);
  }
  /// The nodes of the graph (those marked in `only`, or all) on what `run` holds: their inputs
  /// must be ready there (model inputs set by run_forward, or values placed by fit's cache).
  void run_nodes(Run& run, bool training, const std::vector<char>* only) const {
    run.fusing = !training && !only && detail::fusing_inference();
    if (run.fusing && !run.fusion_planned) {
      detail::plan_fusion_chains<T>(g_, contrib_, run.st, run.chain, run.alias);
      run.fuse_ctx.resize(g_.size());
      run.fusion_planned = true;
    }
    for (size_t n = 0; n < g_.size(); ++n) {
      const auto& gn = g_[n];
      if (gn.input_slot >= 0 || (only && !(*only)[n])) continue;
      if (run.fusing && run.alias[n] >= 0) continue;  // computed in place by its chain's head
      for (size_t s = 0; s < gn.in.size(); ++s) run.fin[n][s] = ptr(run, gn.in[s]);
      for (size_t k = 0; k < run.fout[n].size(); ++k) run.outs_c[n][k] = run.fout[n][k];
      if (run.fusing && !run.chain[n].empty()) run_fused(run, n);
      else gn.layer->forward(run.fin[n], run.fout[n], run.st[n].get(), training);
    }
  }
  /// Node n with its chain's element-wise layers applied to its output rows as they are computed.
  void run_fused(Run& run, size_t n) const {
    const auto& gn = g_[n];
    size_t prev = n;
    for (int b : run.chain[n]) {  // the statistics of this call (the weights may have changed)
      g_[static_cast<size_t>(b)].layer->prepare_inplace_inference(run.st[static_cast<size_t>(b)].get(),
                                                                   g_[prev].node->output_shapes[0]);
      prev = static_cast<size_t>(b);
    }
    run.fuse_ctx[n] = {this, &run, static_cast<int>(n)};
    CallState* st = run.st[n].get();
    gn.layer->set_output_epilogue(st, [c = &run.fuse_ctx[n]](T* y, Index b, Index e) { c->model->apply_chain(*c->run, c->node, y, b, e); });
    try {
      gn.layer->forward(run.fin[n], run.fout[n], st, false);
    } catch (...) {
      gn.layer->set_output_epilogue(st, {});
      throw;
    }
    gn.layer->set_output_epilogue(st, {});
  }
  void apply_chain(Run& run, int n, T* y, Index begin, Index end) const {
    for (int b : run.chain[static_cast<size_t>(n)])
      g_[static_cast<size_t>(b)].layer->inplace_inference(y, begin, end, run.st[static_cast<size_t>(b)].get());
  }
  const Tensor<T>* output_ptr(Run& run, size_t j) const { return ptr(run, out_refs_[j]); }

  /// Back-propagate dLoss/doutputs (one per output, none null); fills the non-null `din` entries
  /// with dLoss/dinputs and accumulates weight gradients of trainable layers. Layers below the
  /// lowest trainable layer do no work at all.
  void run_backward(Run& run, const In<T>& dout, const Out<T>& din) {
    if (dout.size() != out_refs_.size())
      throw value_error(detail::cat("model '", this->name(), "': backward needs one gradient per output"));
    refresh_trainable(run);
    for (size_t n = 0; n < g_.size(); ++n) {
      const auto& gn = g_[n];
      if (gn.input_slot >= 0) {
        run.need[n] = static_cast<size_t>(gn.input_slot) < din.size() && din[static_cast<size_t>(gn.input_slot)] != nullptr;
        continue;
      }
      bool need = run.has_tw[n] != 0;
      for (auto& pr : gn.in) need = need || run.need[static_cast<size_t>(pr.first)];
      run.need[n] = need;
    }
    for (size_t n = g_.size(); n-- > 0;) {
      const auto& gn = g_[n];
      if (gn.input_slot >= 0 || !run.need[n]) continue;
      for (size_t k = 0; k < run.bdout[n].size(); ++k) run.bdout[n][k] = gather_grad(run, dout, static_cast<int>(n), static_cast<int>(k));
      for (size_t s = 0; s < gn.in.size(); ++s) {
        const auto& pr = gn.in[s];
        run.bdin[n][s] = run.need[static_cast<size_t>(pr.first)] ? grad_target(run, static_cast<int>(n), static_cast<int>(s)) : nullptr;
      }
      gn.layer->backward(run.fin[n], run.outs_c[n], run.bdout[n], run.bdin[n], run.st[n].get());
    }
    for (size_t i = 0; i < in_nodes_.size() && i < din.size(); ++i) {
      if (!din[i]) continue;
      const Tensor<T>* g = gather_grad(run, dout, in_nodes_[i], 0);
      din[i]->resize(g->shape());
      std::copy(g->begin(), g->end(), din[i]->begin());
    }
  }

  // ---- inference -----------------------------------------------------------------------------------
  /// Batched inference on every input (first axis = samples); returns one tensor per output.
  /// The inputs are read in place, batch by batch: never copied whole.
  std::vector<Tensor<T>> predict(const std::vector<Tensor<T>>& x, Index batch_size = 32) {
    ensure_built(pointers_to(x));
    return predict_impl(pointers_to(x), batch_size, infer_);
  }
  /// Inference that any number of threads may run at once on one model: same batching, row
  /// slicing and results as the non-const predict, bit for bit, with scratch of its own per call.
  /// The model must be built (loaded, or called once) and not changed (trained, edited, loaded
  /// into) meanwhile.
  std::vector<Tensor<T>> predict(const std::vector<Tensor<T>>& x, Index batch_size = 32) const {
    if (g_.empty()) throw value_error(detail::cat("predict: model '", this->name(), "' is not built yet (call the non-const predict once)"));
    InferScratch s;
    return predict_impl(pointers_to(x), batch_size, s);
  }
  Tensor<T> predict(const Tensor<T>& x, Index batch_size = 32) const {
    if (g_.empty()) throw value_error(detail::cat("predict: model '", this->name(), "' is not built yet (call the non-const predict once)"));
    InferScratch s;
    auto r = predict_impl({&x}, batch_size, s);
    if (r.size() != 1)
      throw value_error(detail::cat("model '", this->name(), "' has ", r.size(), " outputs: use the vector form of predict"));
    return std::move(r[0]);
  }
  /// Single-input, single-output convenience.
  Tensor<T> predict(const Tensor<T>& x, Index batch_size = 32) {
    ensure_built({&x});
    auto r = predict_impl({&x}, batch_size, infer_);
    if (r.size() != 1)
      throw value_error(detail::cat("model '", this->name(), "' has ", r.size(), " outputs: use the vector form of predict"));
    return std::move(r[0]);
  }

 private:
  std::vector<Tensor<T>> predict_impl(const In<T>& xs, Index batch_size, InferScratch& sc) const {
    if (batch_size <= 0) throw value_error("predict: batch_size must be positive");
    const Index n = check_samples(xs, "predict");
    const std::vector<Shape> shapes = adapted_shapes(xs);
    const double work = inference_work(shapes);
    std::vector<Tensor<T>> result(out_refs_.size());
    for (Index b0 = 0; b0 < n || (n == 0 && b0 == 0); b0 += batch_size) {
      const Index cnt = std::min(batch_size, n - b0);
      const std::vector<const Tensor<T>*>& ys = infer_rows(xs, shapes, b0, cnt, work, sc);
      for (size_t j = 0; j < out_refs_.size(); ++j) {
        const Tensor<T>* y = ys[j];
        if (b0 == 0) {
          Shape s = y->shape();
          s[0] = n;
          result[j].resize(s);
        }
        std::copy(y->begin(), y->end(), result[j].data() + b0 * y->inner(1));
      }
      if (n == 0) break;
    }
    return result;
  }

  /// Inference on rows [b0, b0 + cnt) of the inputs (read as `shapes`); returns the outputs,
  /// valid until the next call. When every layer computes rows independently (parallel_rows)
  /// and the batch is worth it (`work`: multiply-adds per sample), the rows are cut into one
  /// slice per thread, each run through the whole model on its own thread and its own Run (no
  /// synchronisation between layers, each slice's activations stay in its core's cache). Row
  /// results do not depend on the slicing.
  const std::vector<const Tensor<T>*>& infer_rows(const In<T>& xs, const std::vector<Shape>& shapes, Index b0, Index cnt,
                                                 double work, InferScratch& sc) const {
    detail::FusingInference fusing(inference_fusion());  // (model/fusion.hpp)
    sc.out.resize(out_refs_.size());
    const Index slices = this->parallel_rows(false) ? row_slices(cnt, work) : 1;
    if (slices <= 1) {
      sc.x.resize(xs.size());
      sc.ptrs.resize(xs.size());
      for (size_t i = 0; i < xs.size(); ++i) {
        xs[i]->slice_rows_into(b0, cnt, sc.x[i], shapes[i]);
        sc.ptrs[i] = &sc.x[i];
      }
      run_forward(sc.run, sc.ptrs, false);
      for (size_t j = 0; j < out_refs_.size(); ++j) sc.out[j] = output_ptr(sc.run, j);
      return sc.out;
    }
    run_slices(sc, xs, shapes, b0, cnt, slices, false, nullptr);
    sc.y.resize(out_refs_.size());
    for (size_t j = 0; j < out_refs_.size(); ++j) {
      gather_slices(sc.slices, out_refs_[j], cnt, slices, sc.y[j]);
      sc.out[j] = &sc.y[j];
    }
    return sc.out;
  }

  /// Row slices for a batch of `cnt` samples of `work` multiply-adds each: one per thread when no
  /// input has a fixed batch size and each slice gets 8+ rows and ~250k+ multiply-adds; else 1.
  Index row_slices(Index cnt, double work) const {
    const int threads = detail::usable_threads();
    if (threads <= 1 || cnt < 16) return 1;
    for (const auto& t : inputs_)
      if (!t.shape().empty() && t.shape()[0] >= 0) return 1;
    const double by_work = static_cast<double>(cnt) * work / detail::kMinWorkPerThread;
    const Index s = std::min<Index>({static_cast<Index>(threads), cnt / 8, static_cast<Index>(std::min(by_work, 1e9))});
    return std::max<Index>(s, 1);
  }

  /// Rows [b0, b0 + cnt) of the inputs cut into `slices` slices; slice c runs the graph (the
  /// nodes marked in `only`, or all) in runs[c] on one of graft's threads. A slice's exception
  /// is rethrown here.
  void run_slices(InferScratch& sc, const In<T>& xs, const std::vector<Shape>& shapes, Index b0, Index cnt,
                  Index slices, bool training, const std::vector<char>* only) const {
    const size_t ns = static_cast<size_t>(slices);
    if (sc.slices.size() < ns) sc.slices.resize(ns);
    if (sc.slice_x.size() < ns) sc.slice_x.resize(ns);
    if (sc.slice_ptrs.size() < ns) sc.slice_ptrs.resize(ns);
    sc.slice_err.assign(ns, nullptr);
    const bool fusing = detail::fusing_inference();
    detail::parallel_chunks(slices, detail::usable_threads(), [&](Index c) {
      const size_t k = static_cast<size_t>(c);
      detail::FusingInference scope(fusing);  // the caller's (a thread of graft's pool runs it)
      try {
        const Index r0 = cnt * c / slices, r1 = cnt * (c + 1) / slices;
        sc.slice_x[k].resize(xs.size());
        sc.slice_ptrs[k].resize(xs.size());
        for (size_t i = 0; i < xs.size(); ++i) {
          xs[i]->slice_rows_into(b0 + r0, r1 - r0, sc.slice_x[k][i], shapes[i]);
          sc.slice_ptrs[k][i] = &sc.slice_x[k][i];
        }
        run_forward(sc.slices[k], sc.slice_ptrs[k], training, only);
      } catch (...) {
        sc.slice_err[k] = std::current_exception();
      }
    });
    for (auto& e : sc.slice_err)
      if (e) std::rethrow_exception(e);
  }

  /// Tensor `pr` of every slice's run, stacked into `dst` (cnt rows).
  void gather_slices(std::vector<Run>& runs, const std::pair<int, int>& pr, Index cnt, Index slices, Tensor<T>& dst) const {
    const Tensor<T>& first = *ptr(runs[0], pr);
    dst.resize_batch(first.shape(), cnt);
    const Index w = first.inner(1);
    for (Index c = 0; c < slices; ++c) {
      const Tensor<T>& y = *ptr(runs[static_cast<size_t>(c)], pr);
      const Index r0 = cnt * c / slices, rows = cnt * (c + 1) / slices - r0;
      if (y.rank() == 0 || y.dim(0) != rows || y.inner(1) != w)
        throw shape_error(detail::cat("model '", this->name(), "': layer '", g_[static_cast<size_t>(pr.first)].layer->name(),
                                      "' gave shape ", shape_str(y.shape()), " for a slice of ", rows,
                                      " rows: not one row per sample"));
      std::copy(y.begin(), y.end(), dst.data() + r0 * w);
    }
  }

 public:
  /// True when every layer of the model computes rows independently (see Layer::parallel_rows).
  bool parallel_rows(bool training) const override {
    for (const auto& gn : g_)
      if (gn.input_slot < 0 && !gn.layer->parallel_rows(training)) return false;
    return true;
  }

 private:
  /// Rough multiply-adds per sample of one forward pass on inputs of these shapes (the first
  /// axis is ignored): per layer call, its weights times its output positions (output elements
  /// over the last axis; exact for Dense and convolutions) plus its output elements. Nested
  /// models count their own layers. `per_node`, when given, receives each graph node's share.
  /// 0 when a shape is unknown.
  double inference_work(const std::vector<Shape>& in, std::vector<double>* per_node = nullptr) const {
    if (per_node) per_node->assign(g_.size(), 0.0);
    if (in.size() != in_nodes_.size()) return 0;
    try {
      std::vector<std::vector<Shape>> shp(g_.size());
      for (size_t i = 0; i < in.size(); ++i) {
        Shape s = in[i];
        if (!s.empty()) s[0] = 1;
        shp[static_cast<size_t>(in_nodes_[i])] = {s};
      }
      double work = 0;
      std::vector<Param<T>*> ws;
      propagate_shapes(shp, [&](size_t n, const std::vector<Shape>& ins) {
        const auto& gn = g_[n];
        for (const Shape& o : shp[n])
          for (Index d : o)
            if (d < 0) throw shape_error("unknown dimension");
        double w = 0;
        if (gn.layer->is_model()) {
          w = static_cast<const Model<T>&>(*gn.layer).inference_work(ins);
        } else {
          ws.clear();
          gn.layer->collect_weights(ws);
          double params = 0;
          for (const Param<T>* p : ws) params += static_cast<double>(p->value.size());
          const Shape& o = shp[n].at(0);
          const double elems = static_cast<double>(shape_size(o));
          w = params * (o.empty() || o.back() == 0 ? 0.0 : elems / static_cast<double>(o.back()));
          for (const Shape& oo : shp[n]) w += static_cast<double>(shape_size(oo));
        }
        if (per_node) (*per_node)[n] = w;
        work += w;
      });
      return work;
    } catch (const std::exception&) {
      if (per_node) per_node->assign(g_.size(), 0.0);
      return 0;
    }
  }

 public:

  // ---- training -----------------------------------------------------------------------------------
  /// compile(optimizer, loss per output, metrics per output, loss weights).
  void compile(std::shared_ptr<Optimizer<T>> optimizer, std::vector<std::shared_ptr<Loss<T>>> losses,
               std::vector<std::vector<json>> metrics = {}, std::vector<double> loss_weights = {}) {
    if (!optimizer) throw value_error("compile: an optimizer is required");
    size_t no = out_refs_.empty() ? 1 : out_refs_.size();
    if (losses.size() == 1 && no > 1) losses.assign(no, losses[0]);
    if (losses.size() != no)
      throw value_error(detail::cat("compile: model '", this->name(), "' has ", no, " outputs but ", losses.size(), " losses were given"));
    if (loss_weights.empty()) loss_weights.assign(no, 1.0);
    if (loss_weights.size() != no) throw value_error("compile: one loss weight per output is needed");
    if (metrics.size() == 1 && no > 1) metrics.assign(no, metrics[0]);
    if (!metrics.empty() && metrics.size() != no) throw value_error("compile: metrics must be given per output");
    metrics.resize(no);
    compiled_ = CompileState<T>{std::move(optimizer), std::move(losses), std::move(loss_weights), std::move(metrics)};
    train_gen_ = 0;
  }
  void compile(std::shared_ptr<Optimizer<T>> optimizer, std::shared_ptr<Loss<T>> loss, std::vector<std::string> metrics = {}) {
    std::vector<json> m(metrics.begin(), metrics.end());
    compile(std::move(optimizer), std::vector<std::shared_ptr<Loss<T>>>{std::move(loss)}, std::vector<std::vector<json>>{m});
  }
  /// compile(optimizer, "sparse_categorical_crossentropy", {"accuracy"})
  void compile(std::shared_ptr<Optimizer<T>> optimizer, const std::string& loss, std::vector<std::string> metrics = {}) {
    compile(std::move(optimizer), make_loss<T>(json(loss)), std::move(metrics));
  }
  /// compile("adam", "mse") — optimizer by name with Keras defaults.
  void compile(const std::string& optimizer, const std::string& loss, std::vector<std::string> metrics = {}) {
    compile(make_optimizer<T>(json(optimizer)), loss, std::move(metrics));
  }
  bool compiled() const { return compiled_.has_value(); }
  const CompileState<T>& compile_state() const {
    if (!compiled_) throw value_error(detail::cat("model '", this->name(), "' is not compiled"));
    return *compiled_;
  }
  std::shared_ptr<Optimizer<T>> optimizer() const { return compiled_ ? compiled_->optimizer : nullptr; }
  /// keras Model.stop_training: a callback sets it to end fit() after the current batch.
  bool stop_training = false;

  History fit(const Tensor<T>& x, const Tensor<T>& y, const FitOptions<T>& o = {}) {
    return fit_impl({&x}, {&y}, o);
  }
  /// Training on a data source (data/source.hpp: an image folder, an HDF5 file read in chunks,
  /// a user loader): batches are loaded on a worker thread while the previous one trains, and
  /// memory stays bounded by a few batches (plus the feature cache, within its budget).
  /// validation_split takes the source's last samples.
  History fit(const data::Source<T>& src, const FitOptions<T>& o = {}) {
    if (!(o.validation_split >= 0 && o.validation_split < 1)) throw value_error("fit: validation_split must be in [0, 1)");
    const data::Source<T>* val = o.validation_source.get();
    std::unique_ptr<data::Source<T>> tail;
    Index n_train = src.size();
    if (!o.validation_x.empty()) {  // Keras: validation_data wins
      tail = std::make_unique<data::ArraySource<T>>(pointers_to(o.validation_x), pointers_to(o.validation_y));
      val = tail.get();
    } else if (!val && o.validation_split > 0) {
      n_train = static_cast<Index>(std::floor(static_cast<double>(src.size()) * (1.0 - o.validation_split)));
      std::vector<Index> rows;
      for (Index i = n_train; i < src.size(); ++i) rows.push_back(i);
      tail = std::make_unique<data::SubsetSource<T>>(std::shared_ptr<const data::Source<T>>(&src, [](const data::Source<T>*) {}), rows);
      val = tail.get();
    }
    return detail::FitLoop<T>::run_source(*this, src, n_train, val, o);
  }
  /// Loss and metrics over a source, batch by batch (the first `steps` batches; 0: all).
  Logs evaluate(const data::Source<T>& src, Index batch_size = 32, Index steps = 0) {
    return detail::FitLoop<T>::evaluate_source(*this, src, batch_size, steps, nullptr, nullptr, nullptr);
  }
  /// Outputs for every sample of a source, in order.
  std::vector<Tensor<T>> predict(const data::Source<T>& src, Index batch_size = 32) {
    return detail::FitLoop<T>::predict_source(*this, src, batch_size);
  }
  /// The data are read in place (gathered batch by batch), never copied whole.
  History fit(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y, const FitOptions<T>& o) {
    return fit_impl(pointers_to(x), pointers_to(y), o);
  }

 private:
  History fit_impl(const In<T>& x, const In<T>& y, const FitOptions<T>& o) { return detail::FitLoop<T>::run(*this, x, y, o); }
  friend struct detail::FitLoop<T>;

 public:

  /// One optimisation step on one batch; returns its loss (Keras train_on_batch).
  double train_on_batch(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y) {
    if (!compiled_) throw value_error(detail::cat("train_on_batch: model '", this->name(), "' must be compiled first"));
    if (this->g_.empty()) ensure_built(pointers_to(x));  // guarded: no pointer vector on the hot path
    const In<T>& px = input_pointers(x);
    check_targets(y);
    begin_training();
    return train_step(px, y);
  }

  /// Loss and metrics on (x, y), inference mode, batched; loss is the batch-size weighted mean.
  /// The data are read in place, batch by batch.
  Logs evaluate(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y, Index batch_size = 32) {
    return evaluate_impl(pointers_to(x), pointers_to(y), batch_size);
  }

 private:
  Logs evaluate_impl(const In<T>& x, const In<T>& y, Index batch_size) {
    if (!compiled_) throw value_error(detail::cat("evaluate: model '", this->name(), "' must be compiled first"));
    ensure_built(x);
    check_targets(y);
    const Index n = check_samples(x, "evaluate");
    const std::vector<Shape> shapes = adapted_shapes(x);
    if (batch_size <= 0) throw value_error("evaluate: batch_size must be positive");
    auto metrics = build_metrics(y);
    std::vector<Tensor<T>> by(y.size());
    const double work = inference_work(shapes);
    double loss_sum = 0;
    std::vector<double> per(out_refs_.size(), 0.0);
    const double reg = this->regularization_loss(false);
    for (Index b0 = 0; b0 < n; b0 += batch_size) {
      Index cnt = std::min(batch_size, n - b0);
      for (size_t j = 0; j < y.size(); ++j) y[j]->slice_rows_into(b0, cnt, by[j], y[j]->shape());
      const std::vector<const Tensor<T>*>& ys = infer_rows(x, shapes, b0, cnt, work, infer_);
      double total = 0;
      for (size_t j = 0; j < out_refs_.size(); ++j) {
        if (!compiled_->losses[j]) continue;
        double l = compiled_->losses[j]->compute(by[j], *ys[j], nullptr, T(1));
        per[j] += l * static_cast<double>(cnt);
        total += compiled_->loss_weights[j] * l;
      }
      loss_sum += (total + reg) * static_cast<double>(cnt);
      for (auto& m : metrics) m.second->update(by[m.first], *ys[m.first]);
    }
    Logs logs;
    logs["loss"] = n ? loss_sum / static_cast<double>(n) : 0.0;
    if (out_refs_.size() > 1)
      for (size_t j = 0; j < out_refs_.size(); ++j) logs[output_names()[j] + "_loss"] = n ? per[j] / static_cast<double>(n) : 0.0;
    for (auto& m : metrics) logs[metric_log_name(m)] = m.second->result();
    return logs;
  }

 public:
  Logs evaluate(const Tensor<T>& x, const Tensor<T>& y, Index batch_size = 32) {
    return evaluate_impl({&x}, {&y}, batch_size);
  }

  // ---- config / summary ---------------------------------------------------------------------------
  /// One tensor a call consumes or a model exposes: output `tensor` of the `node`-th call of
  /// `layer` counted over this model's calls of it (creation order, as Keras numbers nodes).
  struct GraphRef {
    Layer<T>* layer = nullptr;
    int node = 0;
    int tensor = 0;
    Shape shape;
  };
  struct GraphCall {
    std::vector<GraphRef> inputs;
    bool list_call = false;
  };
  struct GraphLayer {
    std::shared_ptr<Layer<T>> layer;
    std::vector<GraphCall> calls;  ///< this model's calls of the layer, in creation order
  };
  /// The graph as every serializer sees it: layers in model.layers order with their calls, and
  /// the model's inputs and outputs. Dialects differ only in how they spell it (io/, saving/).
  struct GraphRecord {
    std::vector<GraphLayer> layers;
    std::vector<GraphRef> inputs, outputs;
  };
  GraphRecord graph_record() const {
    std::unordered_map<const Node<T>*, int> node_index;
    std::unordered_map<const Layer<T>*, std::vector<int>> calls_of;  // graph nodes per layer, in call order
    std::unordered_map<const Layer<T>*, int> count;
    for (const auto& l : layers_)
      for (const auto& nd : l->inbound_nodes()) {
        int gi = graph_node_of(nd.get());
        if (gi < 0 || node_index.count(nd.get())) continue;
        node_index[nd.get()] = count[l.get()]++;
        calls_of[l.get()].push_back(gi);
      }
    for (size_t n = 0; n < g_.size(); ++n)
      if (!node_index.count(g_[n].node.get())) {
        node_index[g_[n].node.get()] = count[g_[n].layer]++;
        calls_of[g_[n].layer].push_back(static_cast<int>(n));
      }
    auto ref = [&](int gnode, int tensor) {
      const auto& gn = g_[static_cast<size_t>(gnode)];
      return GraphRef{gn.layer, node_index.at(gn.node.get()), tensor,
                      gn.node->output_shapes.at(static_cast<size_t>(tensor))};
    };
    GraphRecord r;
    for (const auto& l : layers_) {
      GraphLayer gl{l, {}};
      for (int n : calls_of[l.get()]) {
        const auto& gn = g_[static_cast<size_t>(n)];
        if (gn.input_slot >= 0) continue;
        GraphCall c;
        c.list_call = gn.node->list_call;
        for (auto& pr : gn.in) c.inputs.push_back(ref(pr.first, pr.second));
        gl.calls.push_back(std::move(c));
      }
      r.layers.push_back(std::move(gl));
    }
    for (int n : in_nodes_) r.inputs.push_back(ref(n, 0));
    for (auto& o : out_refs_) r.outputs.push_back(ref(o.first, o.second));
    return r;
  }

  /// graft's neutral Functional config (list inbound nodes, layer configs as the layers give
  /// them), which graft reads back (clone_model). Files get a Keras dialect: see save_model and
  /// model_to_json.
  json get_config() const override {
    GraphRecord g = graph_record();
    auto ref = [](const GraphRef& r, bool io) {
      // input_layers / output_layers count a nested Functional model's built-in node
      int idx = r.node + (io && r.layer->is_model() && r.layer->class_name() == "Functional" ? 1 : 0);
      return json::array({r.layer->name(), idx, r.tensor});
    };
    json layers = json::array();
    for (const auto& gl : g.layers) {
      json nodes = json::array();
      for (const auto& c : gl.calls) {
        if (gl.layer->is_operation()) {  // numbers among the arguments: Keras 3's node form
          json args = gl.layer->call_arguments();
          size_t k = 0;
          for (auto& a : args)
            if (a.is_null()) a = {{"class_name", "__keras_tensor__"}, {"config", {{"keras_history", ref(c.inputs.at(k++), false)}}}};
          nodes.push_back({{"args", args}, {"kwargs", json::object()}});
          continue;
        }
        json node = json::array();
        for (const auto& in : c.inputs) {
          json e = ref(in, false);
          e.push_back(json::object());
          node.push_back(e);
        }
        nodes.push_back(node);
      }
      layers.push_back({{"class_name", gl.layer->class_name()}, {"config", gl.layer->get_config()},
                        {"name", gl.layer->name()}, {"inbound_nodes", nodes}});
    }
    json ins = json::array(), outs = json::array();
    for (const auto& r : g.inputs) ins.push_back(ref(r, true));
    for (const auto& r : g.outputs) outs.push_back(ref(r, true));
    return json{{"name", this->name()}, {"trainable", this->trainable()}, {"layers", layers},
                {"input_layers", ins}, {"output_layers", outs}};
  }

  /// Keras-style table: layers, output shapes, parameter counts, totals.
  void summary(std::ostream& os = std::cout);

  /// Every distinct layer inside, recursively (nested models expanded into their layers).
  std::vector<Layer<T>*> unique_layers() const {
    std::vector<Layer<T>*> r;
    std::unordered_set<Layer<T>*> seen;
    std::function<void(const Model<T>&)> walk = [&](const Model<T>& m) {
      for (auto& l : m.layers_) {
        if (!seen.insert(l.get()).second) continue;
        if (l->is_model()) walk(static_cast<const Model<T>&>(*l));
        else r.push_back(l.get());
      }
    };
    walk(*this);
    return r;
  }

 protected:
  explicit Model(std::string name) : Layer<T>(std::move(name)) {}

  struct GNode {
    std::shared_ptr<Node<T>> node;
    Layer<T>* layer = nullptr;
    std::vector<std::pair<int, int>> in;  // (producer graph node, output index)
    int input_slot = -1;                  // model input index for input nodes
  };
  struct Contrib {
    int consumer;  // graph node, or -1 for a model output
    int slot;      // consumer input slot, or model output index
  };

  /// Build the graph between `inputs` and `outputs` (keras.src.ops.function.map_graph).
  void init_graph(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs) {
    g_.clear();
    layers_.clear();
    in_nodes_.clear();
    out_refs_.clear();
    contrib_.clear();
    train_run_ = Run();
    infer_ = InferScratch();
    train_scratch_ = InferScratch();
    prefix_work_ = 0;
    train_gen_ = 0;
    unique_valid_ = false;
    if (outputs.empty()) throw value_error("Model: at least one output is needed");
    for (auto& t : inputs)
      if (!t) throw value_error("Model: empty input tensor");
    for (auto& t : outputs)
      if (!t) throw value_error("Model: empty output tensor");
    // Inputs that are not InputLayer tensors (inner tensors) get a fresh InputLayer, as Keras does.
    std::vector<KerasTensor<T>> ins = inputs;
    std::map<std::pair<const Node<T>*, int>, KerasTensor<T>> substitute;
    for (auto& t : ins) {
      bool is_input_node = t.node->inputs.empty() && dynamic_cast<InputLayer<T>*>(t.layer());
      if (!is_input_node) {
        auto il = InputLayer<T>::with_batch_shape(t.shape(), t.layer()->name() + "_input");
        KerasTensor<T> nt = il->output_tensor();
        substitute[{t.node.get(), t.index}] = nt;
        t = nt;
      }
    }
    auto resolve = [&](const KerasTensor<T>& t) {
      auto it = substitute.find({t.node.get(), t.index});
      return it == substitute.end() ? t : it->second;
    };
    std::unordered_set<const Node<T>*> input_set;
    for (auto& t : ins) input_set.insert(t.node.get());

    // DFS from the outputs: nodes in post-order, layers numbered in pre-order.
    std::vector<std::shared_ptr<Node<T>>> post;
    std::unordered_map<const Layer<T>*, int> op_index;
    std::unordered_set<const Node<T>*> finished, in_progress;
    // (an explicit stack, not recursion: a 100 000-layer chain must not overflow the call stack)
    struct Frame {
      KerasTensor<T> t;
      size_t next = 0;  // next input to visit
    };
    std::vector<Frame> stack;
    auto enter = [&](const KerasTensor<T>& t0) {
      KerasTensor<T> t = resolve(t0);
      const Node<T>* n = t.node.get();
      if (finished.count(n)) return;
      if (in_progress.count(n)) throw value_error(detail::cat("Model: the graph has a cycle at layer '", t.layer()->name(), "'"));
      if (!op_index.count(t.layer())) op_index.emplace(t.layer(), static_cast<int>(op_index.size()));
      in_progress.insert(n);
      if (!input_set.count(n) && t.node->inputs.empty())
        throw value_error(detail::cat("Model: graph disconnected: input '", t.layer()->name(),
                                      "' is needed to compute the outputs but is not one of the model inputs"));
      stack.push_back({t, 0});
    };
    auto visit = [&](const KerasTensor<T>& root) {
      enter(root);
      while (!stack.empty()) {
        Frame& f = stack.back();
        const Node<T>* n = f.t.node.get();
        if (!input_set.count(n) && f.next < f.t.node->inputs.size()) {
          KerasTensor<T> x = f.t.node->inputs[f.next++];
          enter(x);  // (may reallocate the stack: f is not used after this)
          continue;
        }
        in_progress.erase(n);
        finished.insert(n);
        post.push_back(f.t.node);
        stack.pop_back();
      }
    };
    for (auto& t : outputs) visit(t);

    // depths (distance from the outputs), as Keras computes them
    std::unordered_map<const Node<T>*, int> node_depth;
    std::unordered_map<const Layer<T>*, int> layer_depth;
    auto parents = [&](const Node<T>* n, std::vector<const Node<T>*>& r) {
      r.clear();
      if (input_set.count(n)) return;
      for (auto& x : n->inputs) r.push_back(resolve(x).node.get());
    };
    std::vector<const Node<T>*> par;
    for (size_t i = post.size(); i-- > 0;) {
      const Node<T>* n = post[i].get();
      int d = node_depth.count(n) ? node_depth[n] : 0;
      int prev = layer_depth.count(n->layer.get()) ? layer_depth[n->layer.get()] : 0;
      d = std::max(d, prev);
      layer_depth[n->layer.get()] = d;
      node_depth[n] = d;
      parents(n, par);
      for (const Node<T>* p : par) node_depth[p] = std::max(d + 1, node_depth.count(p) ? node_depth[p] : 0);
    }
    for (auto& t : ins)
      if (!layer_depth.count(t.layer())) {
        layer_depth[t.layer()] = 0;
        op_index[t.layer()] = -1;
        node_depth[t.node.get()] = 0;
        post.insert(post.begin(), t.node);
      }
    // execution order: deepest first (stable on post-order)
    std::vector<size_t> order(post.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return node_depth[post[a].get()] > node_depth[post[b].get()];
    });
    std::unordered_map<const Node<T>*, int> gidx;
    for (size_t i : order) {
      GNode gn;
      gn.node = post[i];
      gn.layer = post[i]->layer.get();
      gidx[gn.node.get()] = static_cast<int>(g_.size());
      g_.push_back(std::move(gn));
    }
    for (size_t i = 0; i < ins.size(); ++i) {
      int gi = gidx.at(ins[i].node.get());
      if (g_[static_cast<size_t>(gi)].input_slot >= 0)
        throw value_error("Model: the same input tensor is given twice");
      g_[static_cast<size_t>(gi)].input_slot = static_cast<int>(i);
      in_nodes_.push_back(gi);
    }
    for (auto& gn : g_) {
      if (gn.input_slot >= 0) continue;
      for (auto& x : gn.node->inputs) {
        KerasTensor<T> r = resolve(x);
        gn.in.emplace_back(gidx.at(r.node.get()), r.index);
      }
    }
    for (auto& t : outputs) {
      KerasTensor<T> r = resolve(t);
      out_refs_.emplace_back(gidx.at(r.node.get()), r.index);
    }
    inputs_ = ins;
    outputs_.clear();
    for (auto& t : outputs) outputs_.push_back(resolve(t));

    // layers: by depth (deepest first), ties by traversal order
    std::vector<std::pair<const Layer<T>*, std::shared_ptr<Layer<T>>>> ls;
    std::unordered_set<const Layer<T>*> seen;
    for (auto& gn : g_)
      if (seen.insert(gn.layer).second) ls.emplace_back(gn.layer, gn.node->layer);
    std::stable_sort(ls.begin(), ls.end(), [&](const auto& a, const auto& b) {
      int da = layer_depth[a.first], db = layer_depth[b.first];
      if (da != db) return da > db;
      return op_index[a.first] < op_index[b.first];
    });
    std::set<std::string> names;
    for (auto& pr : ls) {
      if (!names.insert(pr.second->name()).second)
        throw value_error(detail::cat("Model: layer names must be unique; '", pr.second->name(), "' is used twice"));
      layers_.push_back(pr.second);
    }
    build_contributions();
    this->built_ = true;
  }

  /// For every node output: who sends gradient back into it.
  void build_contributions() {
    contrib_.assign(g_.size(), {});
    for (size_t n = 0; n < g_.size(); ++n) contrib_[n].resize(g_[n].node->output_shapes.size());
    for (size_t n = 0; n < g_.size(); ++n)
      for (size_t s = 0; s < g_[n].in.size(); ++s) {
        auto& pr = g_[n].in[s];
        contrib_[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)].push_back({static_cast<int>(n), static_cast<int>(s)});
      }
    for (size_t j = 0; j < out_refs_.size(); ++j)
      contrib_[static_cast<size_t>(out_refs_[j].first)][static_cast<size_t>(out_refs_[j].second)].push_back({-1, static_cast<int>(j)});
  }

  /// unique_layers(), computed once per graph (regularization runs every training step).
  const std::vector<Layer<T>*>& cached_unique_layers() {
    if (!unique_valid_) {
      unique_cache_ = unique_layers();
      unique_valid_ = true;
    }
    return unique_cache_;
  }

  int graph_node_of(const Node<T>* n) const {
    for (size_t i = 0; i < g_.size(); ++i)
      if (g_[i].node.get() == n) return static_cast<int>(i);
    return -1;
  }

  /// Hook for models whose graph is built lazily from the first data (Sequential without input
  /// shape); a no-op once the graph exists.
  virtual void ensure_built(const In<T>&) {
    if (g_.empty()) throw value_error(detail::cat("model '", this->name(), "' has no layers"));
  }

  /// Pointers to the inputs as the graph takes them: those whose rank needs adjusting (as in
  /// adapted_shape) are copied into a reused buffer, the others are used in place. No allocation
  /// once warm (train_on_batch's hot path).
  const In<T>& input_pointers(const std::vector<Tensor<T>>& x) {
    if (x.size() != in_nodes_.size())
      throw shape_error(detail::cat("model '", this->name(), "' expects ", in_nodes_.size(), " input array(s), got ", x.size()));
    in_ptrs_.resize(x.size());
    adapted_.resize(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const int adjust = rank_adjustment(i, x[i].shape());
      if (adjust == 0) {
        in_ptrs_[i] = &x[i];
        continue;
      }
      shape_buf_ = x[i].shape();
      if (adjust > 0) shape_buf_.push_back(1);
      else shape_buf_.pop_back();
      adapted_[i] = x[i];
      adapted_[i].reshape(shape_buf_);
      in_ptrs_[i] = &adapted_[i];
    }
    return in_ptrs_;
  }

  static In<T> pointers_to(const std::vector<Tensor<T>>& v) {
    In<T> r;
    r.reserve(v.size());
    for (const auto& t : v) r.push_back(&t);
    return r;
  }

  /// Keras' _adjust_input_rank on shapes: (N, 28, 28) data for a (None, 28, 28, 1) input and
  /// back. The data themselves are never copied for it: each batch is copied under this shape.
  /// +1: data of shape s lack the input's trailing axis of 1; -1: they have one the input does
  /// not; 0: taken as they are.
  int rank_adjustment(size_t i, const Shape& s) const {
    if (g_.empty() || i >= inputs_.size()) return 0;
    const Shape& ref = inputs_[i].shape();
    if (s.size() + 1 == ref.size() && ref.back() == 1) return 1;
    if (s.size() == ref.size() + 1 && !s.empty() && s.back() == 1) return -1;
    return 0;
  }
  Shape adapted_shape(size_t i, const Shape& s) const {
    Shape r = s;
    const int adjust = rank_adjustment(i, s);
    if (adjust > 0) r.push_back(1);
    else if (adjust < 0) r.pop_back();
    return r;
  }
  std::vector<Shape> adapted_shapes(const In<T>& x) const {
    std::vector<Shape> r;
    for (size_t i = 0; i < x.size(); ++i) r.push_back(adapted_shape(i, x[i]->shape()));
    return r;
  }

  void check_shape(size_t i, const Shape& s, bool symbolic) const {
    const Shape& ref = inputs_.at(i).shape();
    bool ok = s.size() == ref.size();
    for (size_t d = 1; ok && d < s.size(); ++d)
      if (ref[d] >= 0 && s[d] >= 0 && ref[d] != s[d]) ok = false;
    if (ok && !symbolic && ref[0] >= 0 && s[0] != ref[0]) ok = false;
    if (!ok) {
      std::string nm = inputs_[i].layer()->name();
      throw shape_error(detail::cat("model '", this->name(), "': input ", i, " ('", nm, "') expects shape ", shape_str(ref),
                                    ", got ", shape_str(s)));
    }
  }

  Index check_samples(const In<T>& x, const char* what) const {
    if (x.size() != in_nodes_.size())
      throw shape_error(detail::cat(what, ": model '", this->name(), "' expects ", in_nodes_.size(), " input array(s), got ", x.size()));
    Index n = -1;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i]->rank() == 0) throw shape_error(detail::cat(what, ": input ", i, " has no sample axis"));
      check_shape(i, adapted_shape(i, x[i]->shape()), true);
      if (n >= 0 && x[i]->dim(0) != n)
        throw shape_error(detail::cat(what, ": inputs have different numbers of samples (", n, " and ", x[i]->dim(0), ")"));
      n = x[i]->dim(0);
    }
    return n;
  }

  template <class V>  // a vector of tensors or of pointers to them
  void check_targets(const V& y) const {
    if (y.size() != out_refs_.size())
      throw shape_error(detail::cat("model '", this->name(), "' has ", out_refs_.size(), " output(s) but ", y.size(), " target array(s) were given"));
  }

  std::vector<std::pair<size_t, std::shared_ptr<Metric<T>>>> build_metrics(const In<T>& y) const {
    std::vector<std::pair<size_t, std::shared_ptr<Metric<T>>>> r;
    for (size_t j = 0; j < compiled_->metrics.size(); ++j)
      for (const auto& id : compiled_->metrics[j]) {
        Shape ps = outputs_[j].shape();
        r.emplace_back(j, make_metric<T>(id, y[j]->shape(), ps));
      }
    return r;
  }
  std::string metric_log_name(const std::pair<size_t, std::shared_ptr<Metric<T>>>& m) const {
    if (out_refs_.size() > 1) return output_names()[m.first] + "_" + m.second->name();
    return m.second->name();
  }

  /// Called at the start of fit/train_on_batch: settle the trainable set and the optimizer slots.
  /// The trainable set is recomputed only after a `trainable` flag, the graph or the compile
  /// state changed (allocation-free otherwise).
  void begin_training() {
    const unsigned long gen = detail::trainable_generation().load();
    if (train_gen_ != gen) {
      train_params_ = this->trainable_weights();
      plan_frozen_prefix();
      train_gen_ = gen;
    }
    compiled_->optimizer->build(train_params_);
    dout_.resize(out_refs_.size());
    dout_ptr_.resize(out_refs_.size());
    last_output_loss_.assign(out_refs_.size(), 0.0);
  }

  /// fit(): the graph nodes below the lowest trainable layer (their backward does no work at all:
  /// no weight and no input gradients), when they compute rows independently in training too
  /// (parallel_rows(true): no Dropout, no batch statistics), and the tensors the rest of the
  /// graph reads from them. train_step runs them in row slices, one per thread, like predict.
  void plan_frozen_prefix() {
    const size_t n = g_.size();
    prefix_.assign(n, 0);
    rest_.assign(n, 0);
    prefix_out_.clear();
    prefix_work_ = 0;
    std::vector<double> work;
    inference_work(input_shapes(), &work);
    for (size_t i = 0; i < n; ++i) {
      const auto& gn = g_[i];
      if (gn.input_slot >= 0) continue;
      bool frozen = !layer_has_trainable(*gn.layer) && gn.layer->parallel_rows(true);
      for (auto& pr : gn.in) {
        const size_t j = static_cast<size_t>(pr.first);
        frozen = frozen && (g_[j].input_slot >= 0 || prefix_[j]);
      }
      prefix_[i] = frozen ? 1 : 0;
      rest_[i] = frozen ? 0 : 1;
      if (frozen) prefix_work_ += work[i];
    }
    auto add_out = [&](const std::pair<int, int>& pr) {
      if (prefix_[static_cast<size_t>(pr.first)] &&
          std::find(prefix_out_.begin(), prefix_out_.end(), pr) == prefix_out_.end())
        prefix_out_.push_back(pr);
    };
    for (size_t i = 0; i < n; ++i)
      if (rest_[i])
        for (auto& pr : g_[i].in) add_out(pr);
    for (auto& pr : out_refs_) add_out(pr);
  }

  /// The training forward pass: the frozen prefix (plan_frozen_prefix) in row slices over the
  /// threads when the batch is worth it, then the rest of the graph on the whole batch; or the
  /// whole graph on the whole batch.
  void train_forward(const In<T>& px) {
    const Index cnt = px.empty() || px[0]->rank() == 0 ? 0 : px[0]->dim(0);
    const Index slices = prefix_work_ > 0 ? row_slices(cnt, prefix_work_) : 1;
    if (slices <= 1) {
      run_forward(train_run_, px, true);
      return;
    }
    auto& sc = train_scratch_;
    sc.slice_shapes.resize(px.size());
    for (size_t i = 0; i < px.size(); ++i) sc.slice_shapes[i] = px[i]->shape();
    run_slices(sc, px, sc.slice_shapes, 0, cnt, slices, true, &prefix_);
    if (!train_run_.planned) plan(train_run_);
    for (auto& pr : prefix_out_)
      gather_slices(sc.slices, pr, cnt, slices, train_run_.val[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)]);
    run_forward(train_run_, px, true, &rest_);
  }

  /// forward, loss, backward, regularization, optimizer step. Allocation-free once warm.
  /// `after_backward`, when given, runs between the backward pass and the regularization and
  /// optimizer step (data-parallel fit sums the gradients of every process there).
  double train_step(const In<T>& px, const std::vector<Tensor<T>>& by, const std::function<void()>* after_backward = nullptr) {
    train_forward(px);
    return finish_train_step(by, after_backward);
  }

  /// Data-parallel fit, a process with no sample in this global batch: zero gradients into the
  /// sum over processes, then the same regularization and optimizer step as every other process.
  double train_step_empty(const std::function<void()>* after_backward) {
    for (Param<T>* p : train_params_) {
      p->grad_fresh = true;
      p->begin_grad();
      p->grad.set_zero();
    }
    if (after_backward && *after_backward) (*after_backward)();
    const double reg = this->regularization_loss(true);
    compiled_->optimizer->apply(train_params_);
    return reg;
  }

  // ---- fit()'s feature cache (train/feature_cache.hpp): the frozen prefix's outputs ----------------
  /// Whether the frozen prefix's outputs can stand for the inputs (plan_frozen_prefix, after
  /// begin_training): the prefix does real work, every later layer reads only prefix outputs or
  /// later layers (never a model input directly), and its layers act the same in training and
  /// inference. Otherwise "" is returned with the reason in `why`.
  bool prefix_cacheable(std::string& why) const {
    if (prefix_out_.empty() || prefix_work_ <= 0) {
      why = "no frozen layers at the bottom of the model";
      return false;
    }
    for (size_t i = 0; i < g_.size(); ++i) {
      if (!rest_[i]) continue;
      for (auto& pr : g_[i].in)
        if (g_[static_cast<size_t>(pr.first)].input_slot >= 0) {
          why = detail::cat("layer '", g_[i].layer->name(), "' reads a model input directly");
          return false;
        }
    }
    for (auto& pr : out_refs_)
      if (g_[static_cast<size_t>(pr.first)].input_slot >= 0) {
        why = "a model output is a model input";
        return false;
      }
    for (size_t i = 0; i < g_.size(); ++i)
      if (rest_[i] && g_[i].input_slot < 0) return true;
    why = "every layer is frozen";
    return false;
  }
  /// Multiply-adds per sample in the frozen prefix.
  double prefix_work() const { return prefix_work_; }
  /// The prefix's output tensors as the last training forward pass left them (cnt rows each).
  const std::vector<const Tensor<T>*>& prefix_values() {
    prefix_vals_.clear();
    for (auto& pr : prefix_out_) prefix_vals_.push_back(ptr(train_run_, pr));
    return prefix_vals_;
  }
  /// Names of the layers whose outputs the cache holds.
  std::vector<std::string> prefix_output_layers() const {
    std::vector<std::string> r;
    for (auto& pr : prefix_out_) r.push_back(g_[static_cast<size_t>(pr.first)].layer->name());
    return r;
  }
  /// A training step from cached prefix outputs (one tensor per prefix output, in
  /// prefix_values' order): the rest of the graph, loss, backward, optimizer step.
  double train_step_from_prefix(std::vector<Tensor<T>>& vals, const std::vector<Tensor<T>>& by,
                                const std::function<void()>* after_backward = nullptr) {
    if (!train_run_.planned) plan(train_run_);
    place_prefix(train_run_, vals);
    run_nodes(train_run_, true, &rest_);
    return finish_train_step(by, after_backward);
  }
  /// Inference on a batch, the prefix and the rest run apart so that the prefix outputs can be
  /// read afterwards (infer_prefix_values). Same results as infer_rows.
  const std::vector<const Tensor<T>*>& infer_split(const In<T>& px) {
    const Index cnt = px.empty() || px[0]->rank() == 0 ? 0 : px[0]->dim(0);
    const Index slices = prefix_work_ > 0 ? row_slices(cnt, prefix_work_) : 1;
    auto& sc = infer_;
    if (slices <= 1) {
      run_forward(sc.run, px, false);
    } else {
      sc.slice_shapes.resize(px.size());
      for (size_t i = 0; i < px.size(); ++i) sc.slice_shapes[i] = px[i]->shape();
      run_slices(sc, px, sc.slice_shapes, 0, cnt, slices, false, &prefix_);
      if (!sc.run.planned) plan(sc.run);
      for (auto& pr : prefix_out_)
        gather_slices(sc.slices, pr, cnt, slices, sc.run.val[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)]);
      run_nodes(sc.run, false, &rest_);
    }
    sc.out.resize(out_refs_.size());
    for (size_t j = 0; j < out_refs_.size(); ++j) sc.out[j] = output_ptr(sc.run, j);
    return sc.out;
  }
  const std::vector<const Tensor<T>*>& infer_prefix_values() {
    prefix_vals_.clear();
    for (auto& pr : prefix_out_) prefix_vals_.push_back(ptr(infer_.run, pr));
    return prefix_vals_;
  }
  /// Inference from cached prefix outputs.
  const std::vector<const Tensor<T>*>& infer_from_prefix(std::vector<Tensor<T>>& vals) {
    if (!infer_.run.planned) plan(infer_.run);
    place_prefix(infer_.run, vals);
    run_nodes(infer_.run, false, &rest_);
    infer_.out.resize(out_refs_.size());
    for (size_t j = 0; j < out_refs_.size(); ++j) infer_.out[j] = output_ptr(infer_.run, j);
    return infer_.out;
  }

  void place_prefix(Run& run, std::vector<Tensor<T>>& vals) {
    if (vals.size() != prefix_out_.size()) throw value_error("feature cache: wrong number of cached tensors");
    for (size_t k = 0; k < prefix_out_.size(); ++k) {
      auto& pr = prefix_out_[k];
      std::swap(run.val[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)], vals[k]);
    }
  }

  double finish_train_step(const std::vector<Tensor<T>>& by, const std::function<void()>* after_backward) {
    double total = 0;
    for (size_t j = 0; j < out_refs_.size(); ++j) {
      const Tensor<T>& yp = *output_ptr(train_run_, j);
      const auto& loss = compiled_->losses[j];
      if (loss) {
        last_output_loss_[j] = loss->compute(by[j], yp, &dout_[j], static_cast<T>(compiled_->loss_weights[j]));
        total += compiled_->loss_weights[j] * last_output_loss_[j];
      } else {
        dout_[j].resize(yp.shape());
        dout_[j].set_zero();
      }
      dout_ptr_[j] = &dout_[j];
    }
    for (Param<T>* p : train_params_) p->grad_fresh = true;
    if (!train_params_.empty()) run_backward(train_run_, dout_ptr_, no_din_);
    if (after_backward && *after_backward) (*after_backward)();
    total += this->regularization_loss(true);
    compiled_->optimizer->apply(train_params_);
    return total;
  }

  /// Rows idx[0..cnt) of src into dst, shaped like `as` (src's shape or its adapted one).
  static void gather_rows(const Tensor<T>& src, const Index* idx, Index cnt, Tensor<T>& dst, const Shape& as) {
    dst.resize_batch(as, cnt);
    const Index w = src.inner(1);
    for (Index r = 0; r < cnt; ++r) std::copy(src.data() + idx[r] * w, src.data() + (idx[r] + 1) * w, dst.data() + r * w);
  }

  void plan(Run& run) const {
    const size_t n = g_.size();
    run.val.assign(n, {});
    run.grad.assign(n, {});
    run.scratch.assign(n, {});
    run.st.clear();
    run.st.resize(n);
    run.fin.assign(n, {});
    run.outs_c.assign(n, {});
    run.bdout.assign(n, {});
    run.fout.assign(n, {});
    run.bdin.assign(n, {});
    run.need.assign(n, 0);
    run.has_tw.assign(n, 0);
    run.input_ptr.assign(in_nodes_.size(), nullptr);
    run.fusing = run.fusion_planned = false;
    for (size_t i = 0; i < n; ++i) {
      const auto& gn = g_[i];
      size_t no = gn.node->output_shapes.size();
      run.val[i].resize(no);
      run.grad[i].resize(no);
      run.scratch[i].resize(gn.in.size());
      run.fin[i].assign(gn.in.size(), nullptr);
      run.bdin[i].assign(gn.in.size(), nullptr);
      run.bdout[i].assign(no, nullptr);
      run.fout[i].resize(no);
      run.outs_c[i].assign(no, nullptr);
      for (size_t k = 0; k < no; ++k) run.fout[i][k] = &run.val[i][k];
      if (gn.input_slot < 0) run.st[i] = gn.layer->make_state();
    }
    run.planned = true;
  }

  void refresh_trainable(Run& run) {
    unsigned long gen = detail::trainable_generation().load();
    if (run.tw_generation == gen) return;
    for (size_t i = 0; i < g_.size(); ++i)
      run.has_tw[i] = g_[i].input_slot < 0 && layer_has_trainable(*g_[i].layer) ? 1 : 0;
    run.tw_generation = gen;
  }
  static bool layer_has_trainable(const Layer<T>& l) { return l.has_trainable_weights(); }

  const Tensor<T>* ptr(Run& run, const std::pair<int, int>& pr) const {
    const auto& gn = g_[static_cast<size_t>(pr.first)];
    if (gn.input_slot >= 0) return run.input_ptr[static_cast<size_t>(gn.input_slot)];
    if (run.fusing && run.alias[static_cast<size_t>(pr.first)] >= 0)  // fused: its chain head's tensor
      return &run.val[static_cast<size_t>(run.alias[static_cast<size_t>(pr.first)])][0];
    return &run.val[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)];
  }

  /// Where consumer `n` writes the gradient for its input slot `s`.
  Tensor<T>* grad_target(Run& run, int n, int s) {
    const auto& pr = g_[static_cast<size_t>(n)].in[static_cast<size_t>(s)];
    if (contrib_[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)].size() == 1)
      return &run.grad[static_cast<size_t>(pr.first)][static_cast<size_t>(pr.second)];
    return &run.scratch[static_cast<size_t>(n)][static_cast<size_t>(s)];
  }
  /// Total gradient of node n's output k (summing fan-out contributions when there are several).
  const Tensor<T>* gather_grad(Run& run, const In<T>& dout, int n, int k) {
    const auto& cs = contrib_[static_cast<size_t>(n)][static_cast<size_t>(k)];
    Tensor<T>& g = run.grad[static_cast<size_t>(n)][static_cast<size_t>(k)];
    auto src = [&](const Contrib& c) -> const Tensor<T>* {
      if (c.consumer < 0) return dout[static_cast<size_t>(c.slot)];
      if (cs.size() == 1) return &g;
      return &run.scratch[static_cast<size_t>(c.consumer)][static_cast<size_t>(c.slot)];
    };
    if (cs.empty()) {
      const Tensor<T>* v = ptr(run, {n, k});
      g.resize(v->shape());
      g.set_zero();
      return &g;
    }
    if (cs.size() == 1) return src(cs[0]);
    bool first = true;
    for (const auto& c : cs) {
      if (c.consumer >= 0 && !run.need[static_cast<size_t>(c.consumer)]) continue;
      const Tensor<T>* s = src(c);
      if (first) {
        g.resize(s->shape());
        std::copy(s->begin(), s->end(), g.begin());
        first = false;
      } else {
        g.array() += s->array();
      }
    }
    if (first) {
      const Tensor<T>* v = ptr(run, {n, k});
      g.resize(v->shape());
      g.set_zero();
    }
    return &g;
  }

  std::vector<GNode> g_;
  std::string source_keras_version_;
  bool inputs_listed_ = false, outputs_listed_ = false;
  std::vector<std::vector<std::vector<Contrib>>> contrib_;
  std::vector<std::shared_ptr<Layer<T>>> layers_;
  std::vector<int> in_nodes_;
  std::vector<std::pair<int, int>> out_refs_;
  std::vector<KerasTensor<T>> inputs_, outputs_;
  Run train_run_;
  InferScratch infer_;          // predict, evaluate (the non-const API)
  InferScratch train_scratch_;  // fit()'s frozen prefix in row slices
  std::vector<char> prefix_, rest_;                 // plan_frozen_prefix: node masks
  std::vector<std::pair<int, int>> prefix_out_;     // prefix tensors the rest reads
  std::vector<const Tensor<T>*> prefix_vals_;
  double prefix_work_ = 0;                          // multiply-adds per sample in the prefix
  std::optional<CompileState<T>> compiled_;
  std::vector<Param<T>*> train_params_;
  unsigned long train_gen_ = 0;  ///< trainable_generation train_params_ was computed at (0: stale)
  std::vector<Layer<T>*> unique_cache_;
  bool unique_valid_ = false;
  std::vector<Tensor<T>> adapted_;
  In<T> in_ptrs_;
  Shape shape_buf_;
  std::vector<Tensor<T>> dout_;
  In<T> dout_ptr_;
  Out<T> no_din_;
  std::vector<double> last_output_loss_;
};

/// A linear stack of layers (keras.Sequential). Its layers() exclude the InputLayer, as in Keras.
template <class T = float>
class Sequential : public Model<T> {
 public:
  explicit Sequential(std::string name = {}) : Model<T>(std::move(name)) {}
  /// Sequential(model_a.layers() minus the last): the layer objects are shared, as in Keras.
  explicit Sequential(const std::vector<std::shared_ptr<Layer<T>>>& layers, std::string name = {})
      : Model<T>(std::move(name)) {
    std::unordered_set<std::string> names;  // one set for all: add's check is linear per layer
    for (auto& l : layers) {
      if (l && !std::dynamic_pointer_cast<InputLayer<T>>(l) && !names.insert(l->name()).second)
        throw value_error(detail::cat("Sequential '", this->name(), "': a layer named '", l->name(), "' is already in the model"));
      add_no_rebuild(l, false);
    }
    rebuild();
  }
  std::string class_name() const override { return "Sequential"; }

  /// Append a layer (an InputLayer first sets the input shape).
  void add(std::shared_ptr<Layer<T>> layer) {
    add_no_rebuild(std::move(layer));
    rebuild();
  }
  /// model.add<graft::Dense>(64, "relu")
  template <template <class> class L, class... A>
  std::shared_ptr<L<T>> add(A&&... args) {
    auto l = std::make_shared<L<T>>(std::forward<A>(args)...);
    add(l);
    return l;
  }
  /// Remove and return the last layer.
  std::shared_ptr<Layer<T>> pop() {
    if (seq_.empty()) throw value_error(detail::cat("Sequential '", this->name(), "': pop() on an empty model"));
    auto l = seq_.back();
    seq_.pop_back();
    rebuild();
    return l;
  }
  /// Set the per-sample input shape explicitly (Keras model.build((None, ...))).
  void build_input(const Shape& shape_without_batch) {
    input_ = std::make_shared<InputLayer<T>>(shape_without_batch, input_name());
    rebuild();
  }
  bool has_input_shape() const { return static_cast<bool>(input_); }
  std::shared_ptr<InputLayer<T>> input_layer() const { return input_; }

  json get_config() const override {
    json layers = json::array();
    if (input_) layers.push_back({{"class_name", "InputLayer"}, {"config", input_->get_config()}});
    for (auto& l : seq_) layers.push_back({{"class_name", l->class_name()}, {"config", l->get_config()}});
    return json{{"name", this->name()}, {"trainable", this->trainable()}, {"layers", layers}};
  }

 protected:
  void ensure_built(const In<T>& x) override {
    if (!this->g_.empty()) return;
    if (seq_.empty()) throw value_error(detail::cat("Sequential '", this->name(), "' has no layers"));
    if (x.empty() || x[0]->rank() == 0) throw value_error("Sequential: cannot infer the input shape");
    Shape s(x[0]->shape().begin() + 1, x[0]->shape().end());
    build_input(s);
  }

 private:
  std::string input_name() const { return this->name() + "_input"; }
  void add_no_rebuild(std::shared_ptr<Layer<T>> layer, bool check_name = true) {
    if (!layer) throw value_error("Sequential: cannot add a null layer");
    if (auto il = std::dynamic_pointer_cast<InputLayer<T>>(layer)) {
      if (!seq_.empty())
        throw value_error(detail::cat("Sequential '", this->name(), "': an InputLayer can only be the first layer"));
      input_ = il;
      return;
    }
    if (check_name)
      for (auto& l : seq_)
        if (l->name() == layer->name())
          throw value_error(detail::cat("Sequential '", this->name(), "': a layer named '", layer->name(), "' is already in the model"));
    seq_.push_back(std::move(layer));
  }
  void rebuild() {
    if (!input_ && !seq_.empty() && seq_.front()->is_model()) {
      auto& m = static_cast<Model<T>&>(*seq_.front());
      if (m.num_inputs() == 1) {
        const Shape& s = m.inputs()[0].shape();
        input_ = InputLayer<T>::with_batch_shape(s, input_name());
      }
    }
    if (!input_ || seq_.empty()) {
      this->g_.clear();
      this->layers_ = seq_;
      this->unique_valid_ = false;
      this->train_gen_ = 0;
      return;
    }
    KerasTensor<T> x = input_->output_tensor();
    KerasTensor<T> in = x;
    for (auto& l : seq_) {
      auto outs = l->call({x}, false);
      if (outs.size() != 1)
        throw value_error(detail::cat("Sequential '", this->name(), "': layer '", l->name(), "' has ", outs.size(),
                                      " outputs; Sequential layers must have one"));
      x = outs[0];
    }
    this->init_graph({in}, {x});
    this->layers_ = seq_;  // Keras: Sequential.layers excludes the InputLayer
    this->unique_valid_ = false;
  }
  std::vector<std::shared_ptr<Layer<T>>> seq_;
  std::shared_ptr<InputLayer<T>> input_;
};

}  // namespace graft

#include "graft/model/summary.hpp"
