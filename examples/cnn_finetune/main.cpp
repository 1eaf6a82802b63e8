// Fine-tuning a pretrained Keras CNN with graft, the Deep Learning with Python recipe (Chollet,
// ch. 5.3 / 8.3): freeze the convolutional base, train a new densely connected head on it, then
// unfreeze the top block of the base and train on at a very low learning rate. Saved with
// graft::save_model as a Keras .h5 file.
//
// The CNN: by default the Teachable Machine export ../shared/keras-corpus/tm_aknight_keras_model.h5
// (tf.keras 2.4, MobileNetV2 alpha 0.35 at 224x224x3 nested in Sequential models); any Keras CNN
// with --model PATH; any keras.applications network built in C++ with --application NAME
// (graft::applications, with Keras' official weights file given by --weights); with --build (or when no file is found) a small conv base that this program
// builds and pretrains itself on the other Fashion-MNIST classes, saves as a Keras file and loads back.
//
// The task: real Fashion-MNIST, by default the five classes sandal, shirt, sneaker, bag and ankle
// boot (5-9, relabelled 0-4; --classes picks others) with a few hundred training images, resized
// (bilinear) to the model's input and replicated to its channels. --build pretrains on the other
// classes only.
//
// Both phases train the assembled model (base + head) on the images, as Keras does; the images
// are resized to the model's input batch by batch (a data Source, read on fit's worker thread).
//   phase 1  the base frozen: a frozen base with frozen BatchNormalization layers (inference
//            mode) computes a fixed function of the image, so fit()'s automatic feature cache
//            runs it once per image in the first epoch and trains the head on its cached outputs
//            in the later ones (Chollet's "bottleneck features", with nothing written by hand;
//            the run prints what the cache did: History::feature_cache);
//   phase 2  the top block unfrozen, end to end. fit()'s cache works at the granularity of the
//            model's top-level graph: the first trainable node is now the base itself (a nested
//            model, partly trainable), so nothing below it is cached and every epoch runs the
//            whole base — what Keras computes too.
#include <graft/applications.hpp>
#include <graft/graft.hpp>

#include "../common/example_args.hpp"
#include "../common/fashion_mnist.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fs = std::filesystem;
using graft::Index;
using graft::Layer;
using graft::Model;
using graft::Sequential;
using graft::Shape;
using graft::Tensor;
using graft::data::Dataset;
using Clock = std::chrono::steady_clock;

#ifndef CNN_FINETUNE_DEFAULT_MODEL
#define CNN_FINETUNE_DEFAULT_MODEL ""
#endif

namespace {

const char* const kUsage = R"(Usage: cnn_finetune [options]

Freeze a Keras CNN's convolutional base, train a new head on Fashion-MNIST, unfreeze the top
block at a low learning rate, save the result as a Keras .h5 file.

Options:
  --model PATH       the Keras CNN (.h5); default: the Teachable Machine MobileNetV2 export
                     )" CNN_FINETUNE_DEFAULT_MODEL R"(
                     when present, otherwise --build
  --application NAME build keras.applications.NAME in C++ (graft::applications: ResNet50,
                     MobileNetV2, EfficientNetB0, ...) without its top, at --input-size, and
                     fine-tune it; images go through NAME's preprocess_input
  --weights FILE     with --application: Keras' weights file for NAME (e.g.
                     mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5), loaded
                     by layer name; without it the network starts from random weights
  --input-size N     with --application: the image size (default 96)
  --alpha A          with --application: the MobileNet width multiplier (default 1.0)
  --build            build and pretrain a small conv base on the other Fashion-MNIST classes instead
  --classes LIST     the new task's Fashion-MNIST classes, comma-separated (default 5,6,7,8,9;
                     e.g. 0,2,4,6 for the hard T-shirt / pullover / coat / shirt task)
  --data-dir DIR     Fashion-MNIST *-ubyte.gz files (default /usr/share/datasets/fashion-mnist)
  --out-dir DIR      where cnn_finetuned.h5 (and conv_base_pretrained.h5) go (default .)
  --train N          training images of the new task (default 300)
  --test N           test images of the new task (default 500)
  --epochs-head N    phase 1 epochs, frozen base (default 20)
  --epochs-top N     phase 2 epochs, top block unfrozen (default 5)
  --lr-head LR       phase 1 learning rate, Adam (default 1e-3)
  --lr-top LR        phase 2 learning rate, RMSprop as in the book (default 1e-5)
  --unfreeze-from L  first layer of the top block (default: the first layer of the last
                     'blockN_' group, e.g. MobileNetV2's block_16_expand, else the last convolution)
  --train-bn         also unfreeze the top block's BatchNormalization layers (by default they
                     stay frozen, in inference mode, as the Keras transfer-learning guide advises:
                     batch statistics of a few hundred new images would shift what the head learnt)
  --input-range R    unit ([0, 1]) or symmetric ([-1, 1], MobileNetV2's preprocess_input);
                     default symmetric for MobileNetV2, unit otherwise
  --pretrain N       --build: images of the other classes to pretrain on (default 6000)
  --pretrain-epochs N  --build: pretraining epochs (default 2)
  --seed S           random seed (default 42)
  --threads N        threads for matrix products (default: OpenMP's default)
  --quiet            no progress lines or summaries, just the results
  --check            exit non-zero unless the head beats chance by far, phase 1 trained on the
                     feature cache and phase 2 (base partly trainable) without it, phase 2 kept
                     phase 1's accuracy, the frozen layers are bit-identical to the file's and the
                     saved file reloads with identical predictions (used by the test suite)
  --help             this text
)";

const char* const kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

struct Args {
  std::string model = CNN_FINETUNE_DEFAULT_MODEL;
  bool model_given = false;
  bool build = false;
  std::string application, weights;
  Index input_size = 96;
  double alpha = 1.0;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = ".";
  Index train = 300, test = 500;
  int epochs_head = 20, epochs_top = 5;
  double lr_head = 1e-3, lr_top = 1e-5;
  std::string unfreeze_from;
  std::string input_range;  // "" = auto
  Index pretrain = 6000;
  std::vector<int> classes{5, 6, 7, 8, 9};
  int pretrain_epochs = 2;
  std::uint64_t seed = 42;
  int threads = 0;
  bool train_bn = false;
  bool quiet = false, check = false;
};

using example_args::parse_double;
using example_args::parse_int;
using example_args::usage_error;

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help" || f == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (f == "--model") {
      a.model = value();
      a.model_given = true;
    } else if (f == "--build") a.build = true;
    else if (f == "--application") a.application = value();
    else if (f == "--weights") a.weights = value();
    else if (f == "--input-size") a.input_size = parse_int(f, value(), 1, 4096);
    else if (f == "--alpha") a.alpha = parse_double(f, value());
    else if (f == "--data-dir") a.data_dir = value();
    else if (f == "--out-dir") a.out_dir = value();
    else if (f == "--train") a.train = parse_int(f, value(), 1, 1000000);
    else if (f == "--test") a.test = parse_int(f, value(), 1, 1000000);
    else if (f == "--epochs-head") a.epochs_head = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--epochs-top") a.epochs_top = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--lr-head") a.lr_head = parse_double(f, value());
    else if (f == "--lr-top") a.lr_top = parse_double(f, value());
    else if (f == "--unfreeze-from") a.unfreeze_from = value();
    else if (f == "--input-range") {
      a.input_range = value();
      if (a.input_range != "unit" && a.input_range != "symmetric") usage_error("--input-range is unit or symmetric");
    } else if (f == "--pretrain") a.pretrain = parse_int(f, value(), 1, 1000000);
    else if (f == "--pretrain-epochs") a.pretrain_epochs = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, value(), 0, std::numeric_limits<int>::max()));
    else if (f == "--threads") a.threads = static_cast<int>(parse_int(f, value(), 1, 1024));
    else if (f == "--train-bn") a.train_bn = true;
    else if (f == "--classes") {
      a.classes.clear();
      std::stringstream ss(value());
      std::string item;
      while (std::getline(ss, item, ',')) {
        int c = static_cast<int>(parse_int(f, item, 0, 9));
        if (std::find(a.classes.begin(), a.classes.end(), c) != a.classes.end()) usage_error("--classes lists a class twice");
        a.classes.push_back(c);
      }
      if (a.classes.size() < 2 || a.classes.size() > 9) usage_error("--classes needs 2 to 9 classes");
    }
    else if (f == "--quiet") a.quiet = true;
    else if (f == "--check") a.check = true;
    else usage_error("unknown option '" + f + "'");
  }
  if (a.build && a.model_given) usage_error("--build and --model exclude each other");
  if (!a.application.empty() && (a.build || a.model_given)) usage_error("--application excludes --build and --model");
  if (!a.weights.empty() && a.application.empty()) usage_error("--weights goes with --application");
  return a;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt(double v, int prec) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}
std::string pct(double v) { return fmt(100.0 * v, 1) + "%"; }
std::string secs(double s) { return fmt(s, 1) + " s"; }

// ---- data ---------------------------------------------------------------------------------------

struct Data {
  Dataset<float> train, test;     // the new task: args.classes -> 0, 1, ..., images [N, 28, 28]
  Dataset<float> pretrain;        // --build: the other classes -> 0, 1, ...
};

std::vector<int> other_classes(const std::vector<int>& classes) {
  std::vector<int> r;
  for (int c = 0; c < 10; ++c)
    if (std::find(classes.begin(), classes.end(), c) == classes.end()) r.push_back(c);
  return r;
}

std::string class_list(const std::vector<int>& classes) {
  std::string r;
  for (int c : classes) r += (r.empty() ? "" : ", ") + std::string(kClassNames[c]);
  return r;
}

Data load_data(const Args& a, bool need_pretrain) {
  auto fm = example_data::load_fashion_mnist(a.data_dir);
  Dataset<float> train = std::move(fm.train);
  Dataset<float> test = std::move(fm.test);
  Data d;
  auto task = [](const Dataset<float>& s, const std::vector<int>& classes) {
    auto b = graft::data::select_classes(s, classes);
    std::map<int, int> table;
    for (size_t i = 0; i < classes.size(); ++i) table[classes[i]] = static_cast<int>(i);
    graft::data::relabel(b, table);
    return b;
  };
  // the new task's images come from a shuffled training set (the first rows could be unbalanced)
  d.train = graft::data::take(graft::data::shuffled(task(train, a.classes), a.seed), std::min(a.train, Index(30000)));
  d.test = graft::data::take(task(test, a.classes), std::min(a.test, Index(5000)));
  if (need_pretrain)
    d.pretrain = graft::data::take(graft::data::shuffled(task(train, other_classes(a.classes)), a.seed + 1),
                                   std::min(a.pretrain, Index(50000)));
  return d;
}

/// Rows rows[0..n) of 28x28 images in [0, 1], as the model's input: bilinear resize to H x W
/// (half-pixel centres, as tf.image.resize), replicated to C channels, mapped to the input range:
/// "unit" [0, 1], "symmetric" [-1, 1], or an application's name: its preprocess_input on [0, 255].
Tensor<float> to_model_input(const Tensor<float>& img, const Index* rows, Index n, const Shape& in, const std::string& scaling) {
  const bool symmetric = scaling == "symmetric", application = scaling != "unit" && !symmetric;
  const Index H = in[1], W = in[2], C = in[3], h0 = img.dim(1), w0 = img.dim(2);
  Tensor<float> x(Shape{n, H, W, C});
  const float sy = static_cast<float>(h0) / static_cast<float>(H), sx = static_cast<float>(w0) / static_cast<float>(W);
  for (Index i = 0; i < n; ++i) {
    const float* src = img.data() + rows[i] * h0 * w0;
    float* dst = x.data() + i * H * W * C;
    for (Index y = 0; y < H; ++y) {
      float fy = std::clamp((static_cast<float>(y) + 0.5f) * sy - 0.5f, 0.f, static_cast<float>(h0 - 1));
      Index y0 = static_cast<Index>(fy), y1 = std::min(y0 + 1, h0 - 1);
      float ay = fy - static_cast<float>(y0);
      for (Index xx = 0; xx < W; ++xx) {
        float fx = std::clamp((static_cast<float>(xx) + 0.5f) * sx - 0.5f, 0.f, static_cast<float>(w0 - 1));
        Index x0 = static_cast<Index>(fx), x1 = std::min(x0 + 1, w0 - 1);
        float ax = fx - static_cast<float>(x0);
        float v = (1 - ay) * ((1 - ax) * src[y0 * w0 + x0] + ax * src[y0 * w0 + x1]) +
                  ay * ((1 - ax) * src[y1 * w0 + x0] + ax * src[y1 * w0 + x1]);
        if (symmetric) v = 2.f * v - 1.f;
        if (application) v *= 255.f;
        for (Index c = 0; c < C; ++c) dst[(y * W + xx) * C + c] = v;
      }
    }
  }
  return application ? graft::applications::preprocess_input(scaling, std::move(x)) : x;
}

/// Images of a Dataset as the model's inputs, converted batch by batch when fit(), evaluate() or
/// predict() ask for rows (on their worker thread): full-size inputs are never all in memory.
/// load_targets gives the labels alone, so the epochs that train on fit()'s cached features
/// convert no image.
class ModelInputs : public graft::data::Source<float> {
 public:
  ModelInputs(const Dataset<float>& d, Shape input, std::string scaling) : d_(d), in_(std::move(input)), scaling_(std::move(scaling)) {}
  Index size() const override { return d_.size(); }
  std::vector<Shape> input_shapes() const override { return {Shape(in_.begin() + 1, in_.end())}; }
  std::vector<Shape> target_shapes() const override { return {Shape{}}; }
  void load(const Index* rows, Index cnt, std::vector<Tensor<float>>& x, std::vector<Tensor<float>>& y) const override {
    x.resize(1);
    x[0] = to_model_input(d_.x, rows, cnt, in_, scaling_);
    load_targets(rows, cnt, y);
  }
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<float>>& y) const override {
    y.resize(1);
    y[0].resize({cnt});
    for (Index i = 0; i < cnt; ++i) y[0][i] = d_.y[rows[i]];
  }
  std::string describe() const override { return "Fashion-MNIST images at " + graft::shape_str(in_); }

 private:
  const Dataset<float>& d_;
  Shape in_;
  std::string scaling_;
};

// ---- the model: base, top block, head ------------------------------------------------------------

Index count_params(const std::vector<graft::Param<float>*>& ps) {
  Index n = 0;
  for (auto* p : ps) n += p->value.size();
  return n;
}

std::shared_ptr<Model<float>> as_model(const std::shared_ptr<Layer<float>>& l) { return std::dynamic_pointer_cast<Model<float>>(l); }

/// --build: a small VGG-style conv base with a BatchNormalization in its top block, pretrained on
/// the Fashion-MNIST classes outside the task with a GlobalAveragePooling + softmax classifier.
std::shared_ptr<Model<float>> build_and_pretrain(const Args& a, const Data& d, const std::string& path) {
  auto m = std::make_shared<Sequential<float>>("pretrained_cnn");
  m->add(std::make_shared<graft::InputLayer<float>>(Shape{28, 28, 1}, "image"));
  m->add(std::make_shared<graft::Conv2D<float>>(16, 3, 1, "same", "relu", true, 1, "block1_conv"));
  m->add(std::make_shared<graft::MaxPooling2D<float>>(2, std::vector<Index>{}, "valid", "block1_pool"));
  m->add(std::make_shared<graft::Conv2D<float>>(32, 3, 1, "same", "relu", true, 1, "block2_conv"));
  m->add(std::make_shared<graft::MaxPooling2D<float>>(2, std::vector<Index>{}, "valid", "block2_pool"));
  m->add(std::make_shared<graft::Conv2D<float>>(32, 3, 1, "same", "linear", false, 1, "block3_conv"));
  m->add(std::make_shared<graft::BatchNormalization<float>>(-1, 0.99, 1e-3, true, true, "block3_bn"));
  m->add(std::make_shared<graft::ReLU<float>>(-1, 0.0, 0.0, "block3_relu"));
  m->add(std::make_shared<graft::GlobalAveragePooling2D<float>>(false, "gap"));
  m->add(std::make_shared<graft::Dense<float>>(static_cast<Index>(other_classes(a.classes).size()), "softmax", true,
                                               "pretraining_classes"));
  m->compile(std::make_shared<graft::Adam<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  if (!a.quiet) m->summary();
  Tensor<float> x = d.pretrain.x;
  x.reshape({x.dim(0), 28, 28, 1});
  graft::FitOptions<float> o;
  o.epochs = a.pretrain_epochs;
  o.batch_size = 32;
  o.seed = a.seed;
  o.verbose = a.quiet ? 0 : 2;
  auto t0 = Clock::now();
  auto h = m->fit(x, d.pretrain.y, o);
  std::cout << "pretrained the conv base on " << d.pretrain.size() << " images of " << class_list(other_classes(a.classes)) << " ("
            << a.pretrain_epochs << " epochs, " << secs(seconds_since(t0)) << ")";
  if (!h["accuracy"].empty()) std::cout << ": training accuracy " << pct(h["accuracy"].back());
  std::cout << "\n";
  graft::save_model(*m, path);
  std::cout << "saved " << path << "\n";
  return m;
}

struct Plan {
  std::shared_ptr<Model<float>> base;   ///< image -> features; what gets frozen
  std::shared_ptr<Model<float>> inner;  ///< the model holding the top block (base, or base's first layer)
  std::string top_from;                 ///< first layer of the top block, in `inner`
  Shape input;                          ///< (None, H, W, C)
};

/// Find the conv base of a loaded classifier and the first layer of its top block.
Plan make_plan(const std::shared_ptr<Model<float>>& src, const Args& a) {
  Plan p;
  if (src->num_inputs() != 1 || src->num_outputs() != 1) throw graft::value_error("the CNN must have one input and one output");
  std::shared_ptr<Layer<float>> first;
  for (auto& l : src->layers())
    if (l->class_name() != "InputLayer") {
      first = l;
      break;
    }
  if (first && first->is_model()) {
    // model.add(conv_base) / Teachable Machine: the first layer is the whole base
    p.base = as_model(first);
  } else {
    // a plain CNN: the base ends at the last layer with a spatial (rank-4) output before the
    // classifier; cut there (a Functional model sharing the layers)
    std::string last_spatial;
    for (auto& l : src->layers()) {
      if (l->class_name() == "InputLayer") continue;
      auto s = src->layer_output_shapes(l.get());
      if (s.size() != 1) continue;
      if (s[0].size() == 4) last_spatial = l->name();
      else if (!last_spatial.empty()) break;
    }
    if (last_spatial.empty()) throw graft::value_error("no convolutional base found (no layer with a 4-D output)");
    p.base = std::make_shared<Model<float>>(src->inputs()[0], src->layer_output(last_spatial), "conv_base");
  }
  // the top block: --unfreeze-from, else the first layer of the last "blockN_" group, else the last
  // convolution; searched in the base and in a model that is the base's first layer
  std::vector<std::shared_ptr<Model<float>>> candidates{p.base};
  for (auto& l : p.base->layers())
    if (l->class_name() != "InputLayer") {
      if (auto m = as_model(l)) candidates.insert(candidates.begin(), m);
      break;
    }
  std::regex block_re("^(block_?[0-9]+_).*");
  for (auto& m : candidates) {
    std::string from;
    if (!a.unfreeze_from.empty()) {
      for (auto& l : m->layers())
        if (l->name() == a.unfreeze_from) from = a.unfreeze_from;
    } else {
      std::string prefix, last_conv;
      for (auto& l : m->layers()) {
        std::smatch mt;
        if (std::regex_match(l->name(), mt, block_re)) prefix = mt[1];
        const std::string c = l->class_name();
        if (c == "Conv2D" || c == "DepthwiseConv2D" || c == "SeparableConv2D") last_conv = l->name();
      }
      if (!prefix.empty()) {
        for (auto& l : m->layers())
          if (l->name().rfind(prefix, 0) == 0) {
            from = l->name();
            break;
          }
      } else {
        from = last_conv;
      }
    }
    if (!from.empty()) {
      p.inner = m;
      p.top_from = from;
      break;
    }
  }
  if (!p.inner)
    throw graft::value_error(a.unfreeze_from.empty() ? std::string("no convolution found in the base to unfreeze")
                                                     : "no layer named '" + a.unfreeze_from + "' in the conv base");
  p.input = p.base->input_shapes()[0];
  if (p.input.size() != 4 || p.input[1] <= 0 || p.input[2] <= 0 || p.input[3] <= 0)
    throw graft::value_error("the CNN needs a fixed (H, W, C) image input, got " + graft::shape_str(p.input));
  return p;
}

bool is_mobilenet_v2(const Model<float>& m) {
  for (Layer<float>* l : m.unique_layers())
    if (l->name() == "block_16_expand" || l->name() == "Conv1_pad") return true;
  return false;
}

int run(const Args& args_in) {
  Args args = args_in;
  const auto t_all = Clock::now();
  graft::set_random_seed(args.seed);
  fs::create_directories(args.out_dir);
  bool build = args.build;
  if (!build && args.application.empty() && !fs::exists(args.model)) {
    if (args.model_given) throw graft::io_error(args.model + ": no such file");
    std::cout << "default model " << (args.model.empty() ? std::string("(none configured)") : args.model)
              << " not found: building a conv base instead (--build)\n";
    build = true;
  }
  auto t0 = Clock::now();
  Data d = load_data(args, build);
  const double t_data = seconds_since(t0);
  const Index n_classes = static_cast<Index>(args.classes.size());
  std::cout << "Fashion-MNIST task: " << class_list(args.classes) << " (" << n_classes << " classes): " << d.train.size()
            << " training and " << d.test.size() << " test images\n";

  // ---- the pretrained CNN
  t0 = Clock::now();
  std::shared_ptr<Model<float>> src;
  std::string src_path = args.model;
  if (build) {
    src_path = (fs::path(args.out_dir) / "conv_base_pretrained.h5").string();
    build_and_pretrain(args, d, src_path);
  }
  if (!args.application.empty()) {  // keras.applications.NAME(include_top=False, weights=FILE) in C++
    graft::applications::Options ao;
    ao.include_top = false;
    ao.input_shape = {args.input_size, args.input_size, 3};
    ao.weights = args.weights;
    ao.alpha = args.alpha;
    auto app = graft::applications::build<float>(args.application, ao);
    std::cout << "application " << args.application << " ('" << app->name() << "', " << app->count_params() << " parameters) "
              << (args.weights.empty() ? "with random weights (no --weights)" : "with the weights of " + args.weights) << "\n";
    src_path = (fs::path(args.out_dir) / (app->name() + "_base.h5")).string();
    graft::save_model(*app, src_path);  // the frozen-layer check below compares with this file
  }
  src = graft::load_model<float>(src_path);
  const double t_load = seconds_since(t0);
  Plan p = make_plan(src, args);
  const std::string scaling = !args.application.empty() ? args.application
                              : !args.input_range.empty() ? args.input_range
                              : is_mobilenet_v2(*p.base) ? "symmetric" : "unit";
  std::cout << "CNN " << src_path << ": input " << graft::shape_str(p.input) << ", conv base '" << p.base->name() << "' -> "
            << graft::shape_str(p.base->output_shapes()[0]) << ", top block from '" << p.top_from << "' in '"
            << p.inner->name() << "', inputs "
            << (scaling == "unit" ? "scaled to [0, 1]" : scaling == "symmetric" ? "scaled to [-1, 1]" : "through " + scaling + "'s preprocess_input")
            << "\n";

  // ---- the new model: the base, then a new head (a nested Sequential, as Teachable Machine does)
  const Shape feat = p.base->output_shapes()[0];
  auto head = std::make_shared<Sequential<float>>("new_head");
  head->add(std::make_shared<graft::InputLayer<float>>(Shape(feat.begin() + 1, feat.end()), "features"));
  if (feat.size() > 2) head->add(std::make_shared<graft::Flatten<float>>("head_flatten"));
  head->add(std::make_shared<graft::Dense<float>>(128, "relu", true, "head_dense"));
  head->add(std::make_shared<graft::Dropout<float>>(0.3, "head_dropout"));
  head->add(std::make_shared<graft::Dense<float>>(n_classes, "softmax", true, "head_output"));
  auto full = std::make_shared<Sequential<float>>("finetuned_cnn");
  full->add(p.base);
  full->add(head);

  // Dropout or noise layers in a frozen base run in training mode (Keras applies them even when
  // frozen): the base then is not deterministic and fit() does not cache it (it says so)
  for (Layer<float>* l : p.base->unique_layers()) {
    const std::string c = l->class_name();
    if (c == "Dropout" || c == "SpatialDropout2D" || c == "GaussianNoise" || c == "GaussianDropout")
      std::cout << "note: the base holds " << c << " layer '" << l->name() << "': fit() will not cache its outputs\n";
  }
  p.base->set_trainable(false);
  if (!args.quiet) full->summary();
  std::cout << "conv base frozen: " << full->count_params() << " parameters, " << count_params(full->trainable_weights())
            << " trainable (the new head)\n";
  ModelInputs train_src(d.train, p.input, scaling), test_src(d.test, p.input, scaling);

  // ---- phase 1: the new head on the frozen base, the base's outputs cached by fit()
  const double chance = 1.0 / static_cast<double>(n_classes);
  full->compile(std::make_shared<graft::Adam<float>>(args.lr_head), "sparse_categorical_crossentropy", {"accuracy"});
  graft::FitOptions<float> o;
  o.batch_size = 32;
  o.seed = args.seed;
  o.verbose = args.quiet ? 0 : 2;
  o.epochs = args.epochs_head;
  t0 = Clock::now();
  graft::History h1 = full->fit(train_src, o);
  const double t_head = seconds_since(t0);
  t0 = Clock::now();
  const double acc_head = full->evaluate(test_src).at("accuracy");
  double t_eval = seconds_since(t0);
  std::cout << "phase 1, frozen base, new head (Adam " << args.lr_head << ", " << args.epochs_head << " epochs, " << secs(t_head)
            << "): test accuracy " << pct(acc_head) << " (training, last epoch " << pct(h1["accuracy"].back()) << ")\n"
            << "  feature cache: " << h1.feature_cache << "\n";

  // ---- phase 2: unfreeze the top block, very low learning rate, end to end
  p.base->set_trainable(true);  // recursive, as in Keras; then the layers before the top block frozen again
  p.inner->set_trainable_from(p.top_from);
  if (!args.train_bn)
    for (auto& l : p.inner->layers())
      if (l->class_name() == "BatchNormalization") l->set_trainable(false);
  const Index n_trainable = count_params(full->trainable_weights());
  std::vector<std::string> unfrozen;
  for (auto& l : p.inner->layers())
    if (l->trainable() && l->class_name() != "InputLayer" && !l->weights().empty()) unfrozen.push_back(l->name());
  std::cout << "unfrozen top block (" << unfrozen.size() << " layers with weights:";
  for (auto& n : unfrozen) std::cout << " " << n;
  std::cout << "): " << n_trainable << " trainable parameters\n";
  full->compile(std::make_shared<graft::RMSprop<float>>(args.lr_top), "sparse_categorical_crossentropy", {"accuracy"});
  o.epochs = args.epochs_top;
  t0 = Clock::now();
  graft::History h2 = full->fit(train_src, o);
  const double t_top = seconds_since(t0);
  t0 = Clock::now();
  const double acc_top = full->evaluate(test_src).at("accuracy");
  t_eval += seconds_since(t0);
  std::cout << "phase 2, top block unfrozen (RMSprop " << args.lr_top << ", " << args.epochs_top << " epochs, " << secs(t_top)
            << "): test accuracy " << pct(acc_head) << " -> " << pct(acc_top) << " (training, last epoch "
            << pct(h2["accuracy"].back()) << ")\n"
            << "  feature cache: " << h2.feature_cache << "\n";

  // ---- save, reload
  const std::string out = (fs::path(args.out_dir) / "cnn_finetuned.h5").string();
  t0 = Clock::now();
  graft::save_model(*full, out);
  const double t_save = seconds_since(t0);
  auto reloaded = graft::load_model<float>(out);
  std::vector<Index> few_rows(static_cast<size_t>(std::min<Index>(d.test.size(), 8)));
  for (size_t i = 0; i < few_rows.size(); ++i) few_rows[i] = static_cast<Index>(i);
  Tensor<float> few = to_model_input(d.test.x, few_rows.data(), static_cast<Index>(few_rows.size()), p.input, scaling);
  const bool identical = reloaded->predict(few) == full->predict(few);
  std::cout << "saved " << out << " (" << secs(t_save) << "); reloaded: predictions "
            << (identical ? "identical" : "DIFFERENT") << "\n";

  // frozen layers of the base untouched: compare with the file
  auto original = graft::load_model<float>(src_path);
  Index frozen_expected = 0, frozen_checked = 0, frozen_changed = 0;
  {
    std::map<std::string, std::vector<Tensor<float>>> orig;
    for (Layer<float>* l : original->unique_layers()) orig[l->name()] = l->get_weights();
    for (auto& l : p.inner->layers()) {
      if (l->trainable() || l->weights().empty()) continue;
      ++frozen_expected;
      auto it = orig.find(l->name());
      if (it == orig.end()) continue;
      ++frozen_checked;
      auto w = l->get_weights();
      bool same = w.size() == it->second.size();
      for (size_t i = 0; same && i < w.size(); ++i) same = w[i] == it->second[i];
      frozen_changed += !same;
    }
  }
  std::cout << "frozen layers with weights: " << frozen_checked << ", changed: " << frozen_changed << "\n";

  const double t_total = seconds_since(t_all);
  std::cout << "\n== Results (" << d.train.size() << " training images, " << d.test.size() << " test images, chance "
            << pct(chance) << ")\n"
            << "  test accuracy, base frozen, head trained: " << pct(acc_head) << "\n"
            << "  test accuracy, top block fine-tuned:      " << pct(acc_top) << "\n"
            << "== Wall time\n"
            << "  data " << secs(t_data) << ", load/build " << secs(t_load) << ", head " << secs(t_head) << " (feature cache "
            << h1.feature_cache.substr(0, h1.feature_cache.find(':')) << "), top block " << secs(t_top) << ", testing "
            << secs(t_eval) << ", save " << secs(t_save) << "; total " << secs(t_total) << "\n";

  if (args.check) {
    std::vector<std::string> failures;
    if (!(acc_head >= chance + 0.25)) failures.push_back("head accuracy " + pct(acc_head) + " is not well above chance");
    if (!(acc_top >= acc_head - 0.05)) failures.push_back("fine-tuning the top block lost accuracy: " + pct(acc_top));
    if (args.epochs_head > 1 && h1.feature_cache.rfind("memory", 0) != 0 && h1.feature_cache.rfind("disk", 0) != 0)
      failures.push_back("phase 1 (frozen base) did not use fit's feature cache: " + h1.feature_cache);
    if (h2.feature_cache.rfind("off", 0) != 0) failures.push_back("phase 2 (base partly trainable) cached features: " + h2.feature_cache);
    if (!identical) failures.push_back("the saved model reloads with different predictions");
    if (frozen_checked != frozen_expected || frozen_changed != 0)
      failures.push_back("frozen layers changed (" + std::to_string(frozen_changed) + ") or were not found in the file");
    for (auto& f : failures) std::cerr << "CHECK FAILED: " << f << "\n";
    if (!failures.empty()) return 1;
    std::cout << "CHECK passed\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example_args::program_name() = "cnn_finetune";
  Args args = parse_args(argc, argv);
#ifdef _OPENMP
  if (args.threads > 0) omp_set_num_threads(args.threads);
#endif
  if (args.threads > 0) Eigen::setNbThreads(args.threads);
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::cerr << "cnn_finetune: " << e.what() << "\n";
    return 1;
  }
}
