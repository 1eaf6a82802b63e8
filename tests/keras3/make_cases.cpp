// Writes models built in graft (every layer family, Sequential and Functional, nested models at
// two levels, shared layers, several inputs and outputs, frozen layers, each optimizer after a few
// training steps) as Keras 3 .h5 files, with inputs and graft's predictions, for
// keras_load_check.py:  graft_keras3_cases OUT_DIR  ->  OUT_DIR/<case>.h5, <case>_x.h5, <case>_y.h5
// and OUT_DIR/manifest.tsv.
#include <graft/graft.hpp>

#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

using namespace graft;
using KTs = std::vector<KerasTensor<float>>;

namespace {

Rng rng(20261206);

Tensor<float> random_tensor(Shape s, double lo = -1, double hi = 1, bool integers = false) {
  Tensor<float> t(s);
  for (auto& v : t) v = integers ? static_cast<float>(static_cast<int>(rng.uniform(lo, hi))) : static_cast<float>(rng.uniform(lo, hi));
  return t;
}

Shape with_batch(Shape s, Index n) {
  s[0] = n;
  return s;
}

/// Random targets for each output: class indices for sparse losses, one-hot-ish or values otherwise.
std::vector<Tensor<float>> targets(Model<float>& m, Index n) {
  std::vector<Tensor<float>> ys;
  const auto& cs = m.compile_state();
  for (size_t j = 0; j < m.num_outputs(); ++j) {
    Shape s = with_batch(m.output_shapes()[j], n);
    if (cs.losses[j] && cs.losses[j]->sparse_labels()) ys.push_back(random_tensor({n}, 0, static_cast<double>(s.back()), true));
    else ys.push_back(random_tensor(s, 0, 1));
  }
  return ys;
}

struct Writer {
  std::string dir;
  std::ofstream manifest;
  explicit Writer(std::string d) : dir(std::move(d)), manifest(dir + "/manifest.tsv") {}

  void write(const std::string& name, Model<float>& m, bool train, bool integer_inputs = false, double hi = 1) {
    const Index n = 6;
    std::vector<Tensor<float>> xs;
    for (auto& s : m.input_shapes()) xs.push_back(random_tensor(with_batch(s, n), integer_inputs ? 0 : -1, hi, integer_inputs));
    if (train) {
      FitOptions<float> o;
      o.epochs = 2;
      o.batch_size = 3;
      o.verbose = 0;
      o.seed = 1;
      m.fit(xs, targets(m, n), o);
    }
    SaveOptions so;
    so.keras_version = "3";
    save_model(m, dir + "/" + name + ".h5", so);
    auto ys = m.predict(xs, n);
    auto put = [&](const std::string& file, const std::string& prefix, const std::vector<Tensor<float>>& ts) {
      detail::atomic_write(file, [&](h5::File& f) {
        auto root = h5::Group::root(f);
        for (size_t j = 0; j < ts.size(); ++j) h5::write_dataset(root, ts.size() == 1 ? prefix : prefix + std::to_string(j), ts[j]);
      });
    };
    put(dir + "/" + name + "_x.h5", "x", xs);
    put(dir + "/" + name + "_y.h5", "y", ys);
    manifest << dir << "/" << name << ".h5\t" << dir << "/" << name << "_x.h5\t" << dir << "/" << name << "_y.h5\n";
    std::cout << "wrote " << name << "\n";
  }
};

template <template <class> class L, class... A>
std::shared_ptr<L<float>> mk(A&&... a) {
  return std::make_shared<L<float>>(std::forward<A>(a)...);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: graft_keras3_cases OUT_DIR\n";
    return 2;
  }
  set_random_seed(7);
  Writer w(argv[1]);
  try {
    {  // Sequential MLP, SGD with Nesterov momentum, a frozen first layer, sparse labels + accuracy
      auto m = std::make_shared<Sequential<float>>("seq_mlp");
      m->add(mk<InputLayer>(Shape{6}));
      auto d1 = mk<Dense>(8, "relu", true, "hidden1");
      m->add(d1);
      m->add(mk<Dropout>(0.2, "drop"));
      m->add(mk<Dense>(7, "tanh", true, "hidden2"));
      m->add(mk<Dense>(3, "softmax", true, "out"));
      d1->set_trainable(false);
      m->compile(std::make_shared<SGD<float>>(0.05, 0.9, true), "sparse_categorical_crossentropy", {"accuracy"});
      w.write("seq_mlp_sgd_nesterov", *m, true);
    }
    {  // Functional, two inputs, two outputs, a shared layer, every merge layer, centered RMSprop
      auto a = Input<float>(Shape{5}, "in_a");
      auto b = Input<float>(Shape{5}, "in_b");
      auto shared = mk<Dense>(5, "selu", true, "shared");
      auto sa = (*shared)(a), sb = (*shared)(b);
      KTs two{sa, sb};
      auto merged = (*mk<Concatenate>(-1, "cat"))(KTs{(*mk<Add>("add"))(two), (*mk<Subtract>("sub"))(two), (*mk<Multiply>("mul"))(two),
                                                     (*mk<Average>("avg"))(two), (*mk<Maximum>("max"))(two), (*mk<Minimum>("min"))(two)});
      auto o1 = (*mk<Dense>(1, "linear", true, "reg"))(merged);
      auto o2 = (*mk<Dense>(4, "softmax", true, "cls"))((*mk<Dense>(6, "elu", true, "h"))(merged));
      auto m = std::make_shared<Model<float>>(KTs{a, b}, KTs{o1, o2}, "two_io");
      m->compile(std::make_shared<RMSprop<float>>(0.01, 0.9, 0.5, 1e-7, true),
                 std::vector<std::shared_ptr<Loss<float>>>{make_loss<float>(json("mean_squared_error")), make_loss<float>(json("categorical_crossentropy"))},
                 {{}, {"accuracy"}}, {0.5, 1.0});
      w.write("functional_two_io_rmsprop", *m, true);
    }
    {  // A frozen Functional conv base nested in a Sequential with a new head (the transfer recipe), Adam amsgrad
      auto x = Input<float>(Shape{12, 12, 3}, "image");
      auto h = (*mk<Rescaling>(1.0 / 127.5, -1.0, "rescale"))(x);
      h = (*mk<ZeroPadding2D>(0, 1, 0, 1, "pad"))(h);
      h = (*mk<Conv2D>(6, 3, 2, "valid", "linear", false, 1, "conv"))(h);
      h = (*mk<BatchNormalization>(-1, 0.99, 1e-3, true, true, "bn"))(h);
      h = (*mk<ReLU>(6.0, 0.0, 0.0, "relu6"))(h);
      auto d = (*mk<DepthwiseConv2D>(3, 1, "same", 1, "linear", false, 1, "dw"))(h);
      h = (*mk<Add>("residual"))(KTs{h, d});
      h = (*mk<GlobalAveragePooling2D>(false, "gap"))(h);
      auto base = std::make_shared<Model<float>>(x, h, "conv_base");
      base->set_trainable(false);
      auto m = std::make_shared<Sequential<float>>("transfer");
      m->add(mk<InputLayer>(Shape{12, 12, 3}, "transfer_input"));
      m->add(base);
      m->add(mk<Dense>(3, "softmax", true, "head"));
      m->compile(std::make_shared<Adam<float>>(0.01, 0.9, 0.999, 1e-7, true), "categorical_crossentropy", {"accuracy"});
      w.write("functional_in_sequential_adam", *m, true, false, 255);
    }
    {  // A Sequential nested in a Functional, called once; Adagrad
      auto inner = std::make_shared<Sequential<float>>("inner_seq");
      inner->add(mk<InputLayer>(Shape{4}));
      inner->add(mk<Dense>(6, "linear", true, "inner_dense"));
      inner->add(mk<LeakyReLU>(0.2, "leaky"));
      auto x = Input<float>(Shape{4}, "x");
      auto y = (*mk<Dense>(2, "sigmoid", true, "out"))((*inner)(x));
      auto m = std::make_shared<Model<float>>(x, y, "seq_in_func");
      m->compile(std::make_shared<Adagrad<float>>(0.1), "binary_crossentropy", {"accuracy"});
      w.write("sequential_in_functional_adagrad", *m, true);
    }
    {  // Two levels: a Functional inside a Sequential inside a Functional, partly frozen; AdamW
      auto fx = Input<float>(Shape{5}, "deep_in");
      auto fcore = std::make_shared<Model<float>>(fx, (*mk<Dense>(5, "gelu", true, "core_dense"))(fx), "core");
      auto mid = std::make_shared<Sequential<float>>("middle");
      mid->add(mk<InputLayer>(Shape{5}, "middle_in"));
      mid->add(fcore);
      auto prelu = mk<PReLU>(std::vector<int>{}, "prelu");
      mid->add(prelu);
      fcore->set_trainable(false);
      auto x = Input<float>(Shape{5}, "top_in");
      auto y = (*mk<Dense>(2, "softmax", true, "top_out"))((*mid)(x));
      auto m = std::make_shared<Model<float>>(x, y, "two_levels");
      m->compile(Adam<float>::adamw(0.01, 0.004), "categorical_crossentropy");
      w.write("two_levels_adamw", *m, true);
    }
    {  // One nested model called twice (a siamese pair), plain SGD
      auto ex = Input<float>(Shape{4}, "e_in");
      auto enc = std::make_shared<Model<float>>(ex, (*mk<Dense>(3, "tanh", true, "enc_dense"))(ex), "encoder");
      auto a = Input<float>(Shape{4}, "left");
      auto b = Input<float>(Shape{4}, "right");
      auto diff = (*mk<Subtract>("diff"))(KTs{(*enc)(a), (*enc)(b)});
      auto y = (*mk<Dense>(1, "sigmoid", true, "same"))(diff);
      auto m = std::make_shared<Model<float>>(KTs{a, b}, y, "siamese");
      m->compile(std::make_shared<SGD<float>>(0.1), "binary_crossentropy");
      w.write("shared_nested_model_sgd", *m, true);
    }
    {  // Vision layers in a Sequential, SGD with momentum
      auto m = std::make_shared<Sequential<float>>("vision");
      m->add(mk<InputLayer>(Shape{10, 10, 2}));
      m->add(mk<Conv2D>(4, 3, 1, "same", "relu", true, 1, "c1"));
      m->add(mk<SeparableConv2D>(5, 3, 1, "valid", 1, "linear", true, 1, "sep"));
      m->add(mk<MaxPooling2D>(2, std::vector<Index>{}, "valid", "mp"));
      m->add(mk<UpSampling2D>(2, "nearest", "up"));
      m->add(mk<Cropping2D>(1, 1, 1, 1, "crop"));
      m->add(mk<AveragePooling2D>(2, std::vector<Index>{}, "same", "ap"));
      m->add(mk<SpatialDropout>(2, 0.1, "sdrop"));
      m->add(mk<GaussianNoise>(0.1, "noise"));
      m->add(mk<GlobalMaxPooling2D>(false, "gmp"));
      m->add(mk<Dense>(2, "softmax", true, "cls"));
      m->compile(std::make_shared<SGD<float>>(0.05, 0.8), "sparse_categorical_crossentropy");
      w.write("vision_sequential_sgd_momentum", *m, true);
    }
    {  // Sequence layers and activation layers, uncompiled
      auto m = std::make_shared<Sequential<float>>("sequence");
      m->add(mk<InputLayer>(Shape{12, 3}));
      m->add(mk<Conv1D>(4, 3, 1, "causal", "linear", true, 1, "c1d"));
      m->add(mk<ELU>(0.7, "elu"));
      m->add(mk<MaxPooling1D>(2, std::vector<Index>{}, "valid", "mp1"));
      m->add(mk<AveragePooling1D>(2, std::vector<Index>{}, "valid", "ap1"));
      m->add(mk<GaussianDropout>(0.1, "gdrop"));
      m->add(mk<GlobalAveragePooling1D>(false, "gap1"));
      m->add(mk<Activation>("swish", "act"));
      m->add(mk<Dense>(3, "linear", true, "logits"));
      m->add(mk<Softmax>(-1, "softmax"));
      w.write("sequence_uncompiled", *m, false);
    }
    {  // Embedding, Flatten, Reshape
      auto m = std::make_shared<Sequential<float>>("embed");
      m->add(mk<InputLayer>(Shape{4}));
      m->add(mk<Embedding>(10, 3, "emb"));
      m->add(mk<Flatten>("flat"));
      m->add(mk<Reshape>(Shape{6, 2}, "reshape"));
      m->add(mk<GlobalAveragePooling1D>(false, "pool"));
      m->add(mk<Dense>(1, "linear", true, "reg"));
      m->compile("adam", "mean_absolute_error");
      w.write("embedding_adam", *m, true, true, 10);
    }
  } catch (const std::exception& e) {
    std::cerr << "graft_keras3_cases: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
