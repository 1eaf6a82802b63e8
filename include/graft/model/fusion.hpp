// graft — inference fusion: in predict and evaluate, the element-wise layers that follow a
// convolution (BatchNormalization in inference mode, ReLU: MobileNet's Conv -> BN -> ReLU6) run
// in place on each range of the convolution's output rows right after it is computed, while those
// rows are in the core's cache, instead of as whole-tensor passes of their own. Each value goes
// through exactly the operations the separate layers apply, in the same order: the results are
// the same bits (tested), only the memory traffic changes. PyTorch gets the same effect for
// inference by folding BatchNormalization into the convolution's weights, which changes the
// roundings; graft does not.
//
// A chain starts at a node whose layer takes an output epilogue (Layer::set_output_epilogue:
// Conv1D, Conv2D, DepthwiseConv2D) and follows single consumers whose layers are element-wise in
// inference (Layer::prepare_inplace_inference) as long as no one else reads the intermediate
// outputs (no fan-out, not a model output). Training never fuses: its backward pass needs every
// layer's output.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "graft/layers/layer.hpp"

namespace graft {

namespace detail {
inline std::atomic<bool>& inference_fusion_setting() {
  static std::atomic<bool> on{true};
  return on;
}
/// Set while predict / evaluate runs a model on this thread (Model::infer_rows).
inline bool& fusing_inference() {
  thread_local bool on = false;
  return on;
}
/// Scope of an inference that may fuse (restores the previous state).
class FusingInference {
 public:
  explicit FusingInference(bool on) : saved_(fusing_inference()) { fusing_inference() = on; }
  ~FusingInference() { fusing_inference() = saved_; }
  FusingInference(const FusingInference&) = delete;
  FusingInference& operator=(const FusingInference&) = delete;

 private:
  bool saved_;
};

/// The chains of a graph: chain[a] lists, in order, the element-wise nodes applied in place to
/// node a's output; alias[b] = a for each of them (-1 elsewhere). `g`: the graph nodes in
/// topological order (layer, in, input_slot, node->output_shapes); `contrib[n][k]`: the readers
/// of node n's output k (consumer -1: a model output); `st`: the nodes' call states.
template <class T, class Nodes, class Contribs>
void plan_fusion_chains(const Nodes& g, const Contribs& contrib, std::vector<std::unique_ptr<CallState>>& st,
                        std::vector<std::vector<int>>& chain, std::vector<int>& alias) {
  const size_t n = g.size();
  chain.assign(n, {});
  alias.assign(n, -1);
  for (size_t a = 0; a < n; ++a) {
    const auto& ga = g[a];
    if (ga.input_slot >= 0 || alias[a] >= 0 || ga.node->output_shapes.size() != 1) continue;
    if (!ga.layer->set_output_epilogue(st[a].get(), {})) continue;  // (also a probe)
    size_t cur = a;
    for (;;) {
      const auto& readers = contrib[cur][0];
      if (readers.size() != 1 || readers[0].consumer < 0) break;
      const size_t b = static_cast<size_t>(readers[0].consumer);
      const auto& gb = g[b];
      if (gb.in.size() != 1 || gb.node->output_shapes.size() != 1) break;
      if (!gb.layer->prepare_inplace_inference(st[b].get(), g[cur].node->output_shapes[0])) break;
      chain[a].push_back(static_cast<int>(b));
      alias[b] = static_cast<int>(a);
      cur = b;
    }
  }
}
}  // namespace detail

/// Inference fusion on (the default) or off for every model: off, predict runs each layer as a
/// whole-tensor pass of its own (the same results, more memory traffic; for measurements).
inline void set_inference_fusion(bool on) { detail::inference_fusion_setting().store(on); }
inline bool inference_fusion() { return detail::inference_fusion_setting().load(); }

}  // namespace graft
