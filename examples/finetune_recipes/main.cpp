// Fine-tuning recipes compared on real data, several seeds each (issue 15, item 9).
//
//   Task "mlp" (Hands-On ML ch. 11): model A, an MLP trained on the 8 Fashion-MNIST classes other
//     than sandal and shirt (as examples/fashion_mnist_transfer), is reused for sandal vs shirt
//     from 200 labelled images, evaluated on the 2000 sandal/shirt test images. Also reused: the
//     encoder of an autoencoder trained without labels on every Fashion-MNIST training image
//     (Hands-On ML's unsupervised pretraining).
//   Task "cnn": a small conv base (examples/cnn_finetune --build) pretrained on T-shirt, trouser,
//     pullover, dress and coat is reused for the other five classes from 300 labelled images,
//     evaluated on their 5000 test images.
//
// The recipes (recipes.hpp): scratch (no transfer), plain, plain_same_lr (a control: plain
// without lowering the rate), discriminative, gradual, one_cycle, sgdr, fine_tune, l2sp, and for
// the mlp task autoencoder / autoencoder_fine_tune (plain / fine_tune on the encoder).
// Seed s draws the task's labelled training images (from the 55000 training images after the
// book's 5000 validation images) and the new head's initial weights; every recipe runs on the
// same seeds, so a seed's recipes share data and initial head (paired comparisons). Writes
// results.json, lr_find.csv and lr_find.svg (the LR finder on the mlp task's head, first seed;
// lr_find_<task>_<stage>.csv / .svg for the others of the first seed).
#include <graft/data/dataset.hpp>
#include <graft/data/idx.hpp>
#include <graft/graft.hpp>

#include "../common/example_args.hpp"
#include "../common/fashion_mnist.hpp"
#include "recipes.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fs = std::filesystem;
using graft::Index;
using graft::Model;
using graft::Sequential;
using graft::Shape;
using graft::Tensor;
using graft::data::Dataset;
using Clock = std::chrono::steady_clock;

namespace {

const char* const kUsage = R"(Usage: finetune_recipes [options]

Fine-tuning recipes (plain, discriminative, gradual, one_cycle, sgdr, fine_tune, l2sp,
autoencoder, and training from scratch) compared over several seeds on Fashion-MNIST.

Options:
  --data-dir DIR        Fashion-MNIST *-ubyte.gz files (default /usr/share/datasets/fashion-mnist,
                        `apt-get install dataset-fashion-mnist`)
  --out-dir DIR         where results.json, lr_find.csv, lr_find.svg and the pretrained models go
                        (default .)
  --seeds N             seeds per recipe (default 10)
  --seed S              first seed (default 42); seeds are S, S+1, ...
  --tasks LIST          mlp, cnn or mlp,cnn (default both)
  --recipes LIST        only these recipes (comma-separated; default all: scratch, plain,
                        plain_same_lr, discriminative, gradual, one_cycle, sgdr, fine_tune, l2sp,
                        autoencoder, autoencoder_fine_tune)
  --quick               a shorter run (a minute or two on 1 core): 5 seeds, model A 5 epochs,
                        autoencoder 2 epochs on 20000 images, conv base pretrained 1 epoch on
                        6000 images, 1000 cnn test images
  --smoke               a smoke test (one seed, tiny pretraining; about half a minute)
  --model-a PATH        start from this Keras model A (.h5) instead of training one
  --epochs-a N          model A epochs (default 20)
  --ae-epochs N         autoencoder epochs (default 10)
  --ae-images N         autoencoder training images (default all 60000)
  --train-b N           labelled sandal/shirt images per seed (default 200)
  --cnn-pretrain N      images of the other classes the conv base is pretrained on (default: all,
                        about 27500)
  --cnn-pretrain-epochs N  (default 5)
  --cnn-train N         labelled images of the cnn task per seed (default 300)
  --cnn-test N          cnn test images (default all 5000)
  --threads N           threads for matrix products (default 1)
  --quiet               only the tables
  --check               exit non-zero unless every recipe beats chance by 15 points on every seed
                        and results.json reads back with every recipe (used by the test suite)
  --help                this text
)";

struct Args {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = ".";
  int seeds = 10;
  std::uint64_t seed = 42;
  bool task_mlp = true, task_cnn = true;
  std::vector<std::string> recipes;  // empty: all
  std::string model_a;
  int epochs_a = 20, ae_epochs = 10;
  Index ae_images = 60000, train_b = 200;
  Index cnn_pretrain = 30000, cnn_train = 300, cnn_test = 5000;
  int cnn_pretrain_epochs = 5;
  int cnn_epochs_frozen = 10, cnn_epochs_unfrozen = 10;
  std::string preset = "default";
  int threads = 1;
  bool quiet = false, check = false;
};

using example_args::parse_int;
using example_args::usage_error;

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> r;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) r.push_back(item);
  return r;
}

Args parse_args(int argc, char** argv) {
  Args a;
  // the presets first, so that explicit flags override them whatever their order
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "--quick") {
      a.preset = "quick";
      a.seeds = 5, a.epochs_a = 5, a.ae_epochs = 2, a.ae_images = 20000;
      a.cnn_pretrain = 6000, a.cnn_pretrain_epochs = 1, a.cnn_test = 1000;
    } else if (f == "--smoke") {
      a.preset = "smoke";
      a.seeds = 1, a.epochs_a = 2, a.ae_epochs = 1, a.ae_images = 5000;
      a.cnn_pretrain = 1000, a.cnn_pretrain_epochs = 1, a.cnn_train = 100, a.cnn_test = 300;
      a.cnn_epochs_frozen = 5, a.cnn_epochs_unfrozen = 5;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help" || f == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (f == "--quick" || f == "--smoke") continue;
    else if (f == "--data-dir") a.data_dir = value();
    else if (f == "--out-dir") a.out_dir = value();
    else if (f == "--seeds") a.seeds = static_cast<int>(parse_int(f, value(), 1, 10000));
    else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, value(), 0, std::numeric_limits<int>::max()));
    else if (f == "--tasks") {
      a.task_mlp = a.task_cnn = false;
      for (auto& t : split_list(value())) {
        if (t == "mlp") a.task_mlp = true;
        else if (t == "cnn") a.task_cnn = true;
        else usage_error("--tasks: unknown task '" + t + "' (mlp, cnn)");
      }
    } else if (f == "--recipes") a.recipes = split_list(value());
    else if (f == "--model-a") a.model_a = value();
    else if (f == "--epochs-a") a.epochs_a = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--ae-epochs") a.ae_epochs = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--ae-images") a.ae_images = parse_int(f, value(), 1, 60000);
    else if (f == "--train-b") a.train_b = parse_int(f, value(), 1, 10000);
    else if (f == "--cnn-pretrain") a.cnn_pretrain = parse_int(f, value(), 1, 30000);
    else if (f == "--cnn-pretrain-epochs") a.cnn_pretrain_epochs = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--cnn-train") a.cnn_train = parse_int(f, value(), 1, 20000);
    else if (f == "--cnn-test") a.cnn_test = parse_int(f, value(), 1, 5000);
    else if (f == "--threads") a.threads = static_cast<int>(parse_int(f, value(), 1, 1024));
    else if (f == "--quiet") a.quiet = true;
    else if (f == "--check") a.check = true;
    else usage_error("unknown option '" + f + "'");
  }
  if (!a.task_mlp && !a.task_cnn) usage_error("--tasks names no task");
  return a;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt(double v, int prec) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}
std::string pct(double v, int prec = 2) { return fmt(100.0 * v, prec) + "%"; }
std::string secs(double s) { return fmt(s, 1) + " s"; }
/// A learning rate as written in code: 0.01, 1e-05.
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
/// Sample standard deviation (n - 1); 0 for a single value.
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// ---- data ---------------------------------------------------------------------------------------

struct Data {
  Dataset<float> all_train;                 // the 60000 training images (the autoencoder's)
  Dataset<float> train_a, test_a;           // mlp: model A's 8 classes
  Dataset<float> pool_b, test_b;            // mlp: sandal (0) / shirt (1); pool_b draws the 200
  Dataset<float> pretrain_cnn, pool_cnn, test_cnn;  // cnn: images [N, 28, 28, 1]
};

Dataset<float> task_of(const Dataset<float>& d, const std::vector<int>& classes) {
  auto t = graft::data::select_classes(d, classes);
  std::map<int, int> table;
  for (size_t i = 0; i < classes.size(); ++i) table[classes[i]] = static_cast<int>(i);
  graft::data::relabel(t, table);
  return t;
}

void to_images(Dataset<float>& d) { d.x.reshape({d.x.dim(0), 28, 28, 1}); }

Data load_data(const Args& a) {
  auto fm = example_data::load_fashion_mnist(a.data_dir);
  Data d;
  d.all_train = std::move(fm.train);
  Dataset<float> test = std::move(fm.test);
  // the book's split: the first 5000 training images are its validation set (unused here: no
  // recipe selects anything on it), model A and the labelled images come from the other 55000
  auto [valid, rest] = graft::data::split_at(d.all_train, 5000);
  (void)valid;
  d.train_a = task_of(rest, {0, 1, 2, 3, 4, 7, 8, 9});
  d.test_a = task_of(test, {0, 1, 2, 3, 4, 7, 8, 9});
  d.pool_b = task_of(rest, {5, 6});
  d.test_b = task_of(test, {5, 6});
  auto others = graft::data::shuffled(task_of(rest, {0, 1, 2, 3, 4}), a.seed + 1);
  d.pretrain_cnn = graft::data::take(others, std::min(a.cnn_pretrain, others.size()));
  d.pool_cnn = task_of(rest, {5, 6, 7, 8, 9});
  d.test_cnn = graft::data::take(task_of(test, {5, 6, 7, 8, 9}), a.cnn_test);
  for (Dataset<float>* s : {&d.pretrain_cnn, &d.pool_cnn, &d.test_cnn}) to_images(*s);
  return d;
}

// ---- pretrained models --------------------------------------------------------------------------

/// Model A of Hands-On ML: Flatten, Dense 300-100-50-50-50 selu, Dense(outputs).
std::shared_ptr<Sequential<float>> make_trunk(const std::string& name, Index outputs, const std::string& act) {
  auto m = std::make_shared<Sequential<float>>(name);
  m->add<graft::InputLayer>(Shape{28, 28});
  m->add<graft::Flatten>();
  for (Index units : {300, 100, 50, 50, 50}) m->add<graft::Dense>(units, "selu");
  m->add<graft::Dense>(outputs, act);
  return m;
}

graft::FitOptions<float> pretrain_options(int epochs, std::uint64_t seed, bool verbose) {
  graft::FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.seed = seed;
  o.verbose = verbose ? 2 : 0;
  return o;
}

/// Save, load back, check the predictions are the same: the recipes start from the file.
std::shared_ptr<Model<float>> save_and_reload(Model<float>& m, const std::string& path, const Tensor<float>& probe) {
  graft::save_model(m, path);
  auto back = graft::load_model<float>(path);
  Tensor<float> p0 = m.predict(probe), p1 = back->predict(probe);
  if (!(p0 == p1)) throw graft::value_error(path + ": reloads with different predictions");
  return back;
}

std::shared_ptr<Model<float>> get_model_a(const Args& a, const Data& d, nlohmann::json& report) {
  const std::string path = (fs::path(a.out_dir) / "my_model_A.h5").string();
  std::shared_ptr<Model<float>> m;
  auto t0 = Clock::now();
  if (!a.model_a.empty()) {
    m = graft::load_model<float>(a.model_a);
    std::cout << "model A from " << a.model_a << "\n";
    report["model_a"] = {{"file", a.model_a}};
    return m;
  }
  graft::set_random_seed(a.seed);
  auto ma = make_trunk("model_A", 8, "softmax");
  ma->compile(std::make_shared<graft::SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  ma->fit(d.train_a.x, d.train_a.y, pretrain_options(a.epochs_a, a.seed, !a.quiet));
  const double acc = ma->evaluate(d.test_a.x, d.test_a.y).at("accuracy");
  m = save_and_reload(*ma, path, d.test_a.x.slice_rows(0, 256));
  const double t = seconds_since(t0);
  std::cout << "model A: " << a.epochs_a << (a.epochs_a == 1 ? " epoch" : " epochs") << " of SGD(1e-3) on " << d.train_a.size() << " images of 8 classes, test accuracy "
            << pct(acc) << " (" << secs(t) << "); saved " << path << "\n";
  report["model_a"] = {{"file", path}, {"epochs", a.epochs_a}, {"test_accuracy", acc}, {"seconds", t}};
  return m;
}

/// Hands-On ML's unsupervised pretraining: an autoencoder whose encoder is model A's trunk
/// (Flatten, Dense 300-100-50-50-50 selu) and whose decoder mirrors it (Dense 50-100-300 selu,
/// Dense 784 sigmoid, Reshape 28x28), trained to reproduce the training images, no labels.
std::shared_ptr<Model<float>> get_encoder(const Args& a, const Data& d, nlohmann::json& report) {
  auto t0 = Clock::now();
  graft::set_random_seed(a.seed + 7);
  auto enc = std::make_shared<Sequential<float>>("encoder");
  enc->add<graft::InputLayer>(Shape{28, 28});
  enc->add<graft::Flatten>();
  for (Index units : {300, 100, 50, 50, 50}) enc->add<graft::Dense>(units, "selu");
  auto dec = std::make_shared<Sequential<float>>("decoder");
  dec->add<graft::InputLayer>(Shape{50});
  for (Index units : {50, 100, 300}) dec->add<graft::Dense>(units, "selu");
  dec->add<graft::Dense>(784, "sigmoid");
  dec->add<graft::Reshape>(Shape{28, 28});
  auto ae = std::make_shared<Sequential<float>>("autoencoder");
  ae->add(enc);
  ae->add(dec);
  ae->compile(std::make_shared<graft::Adam<float>>(1e-3), "mse");
  const Index n = std::min(a.ae_images, d.all_train.size());
  Tensor<float> x = d.all_train.x.slice_rows(0, n);
  ae->fit(x, x, pretrain_options(a.ae_epochs, a.seed + 7, !a.quiet));
  const double mse = ae->evaluate(d.test_b.x, d.test_b.x).at("loss");
  const std::string path = (fs::path(a.out_dir) / "autoencoder.h5").string();
  auto back = save_and_reload(*ae, path, d.test_b.x.slice_rows(0, 64));
  auto encoder = std::dynamic_pointer_cast<Model<float>>(back->layers().front());
  if (!encoder) throw graft::value_error(path + ": the first layer is not the encoder model");
  const double t = seconds_since(t0);
  std::cout << "autoencoder: " << a.ae_epochs << (a.ae_epochs == 1 ? " epoch" : " epochs") << " of Adam(1e-3) on " << n
            << " training images, no labels; reconstruction MSE on the sandal/shirt test images " << fmt(mse, 4) << " ("
            << secs(t) << "); saved " << path << "\n";
  report["autoencoder"] = {{"file", path}, {"epochs", a.ae_epochs}, {"images", n}, {"test_mse", mse}, {"seconds", t}};
  return encoder;
}

/// examples/cnn_finetune's --build base: three conv blocks (a BatchNormalization in the top one),
/// pretrained with a GlobalAveragePooling + softmax classifier on the other classes.
std::shared_ptr<Sequential<float>> make_convnet(Index classes) {
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
  m->add(std::make_shared<graft::Dense<float>>(classes, "softmax", true, "pretraining_classes"));
  return m;
}

std::shared_ptr<Model<float>> get_convnet(const Args& a, const Data& d, nlohmann::json& report) {
  auto t0 = Clock::now();
  graft::set_random_seed(a.seed + 11);
  auto m = make_convnet(5);
  m->compile(std::make_shared<graft::Adam<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  auto h = m->fit(d.pretrain_cnn.x, d.pretrain_cnn.y, pretrain_options(a.cnn_pretrain_epochs, a.seed + 11, !a.quiet));
  const double acc = h.has("accuracy") && !h["accuracy"].empty() ? h["accuracy"].back() : 0.0;
  const std::string path = (fs::path(a.out_dir) / "conv_base_pretrained.h5").string();
  auto back = save_and_reload(*m, path, d.test_cnn.x.slice_rows(0, std::min<Index>(64, d.test_cnn.size())));
  const double t = seconds_since(t0);
  std::cout << "conv base: pretrained on " << d.pretrain_cnn.size() << " images of T-shirt/top, trouser, pullover, dress, coat ("
            << a.cnn_pretrain_epochs << (a.cnn_pretrain_epochs == 1 ? " epoch" : " epochs") << " of Adam(1e-3), training accuracy " << pct(acc) << ", " << secs(t) << "); saved "
            << path << "\n";
  report["conv_base"] = {{"file", path}, {"images", d.pretrain_cnn.size()}, {"epochs", a.cnn_pretrain_epochs},
                         {"train_accuracy", acc}, {"seconds", t}};
  return back;
}

// ---- sources: a pretrained (or randomly initialised) base under a new head -----------------------

using HeadFn = std::function<std::shared_ptr<Sequential<float>>(const Shape& features)>;

/// The source's model for a seed: `src` cloned (Keras clone_model: fresh random weights, then its
/// own weights copied unless `random_init`), every layer but the last `drop` reused as the base;
/// the head built with the seed's generator (the same head for every source of a task).
recipes::Source make_source(const std::string& name, std::shared_ptr<Model<float>> src, int drop, HeadFn head_fn, bool random_init) {
  recipes::Source s;
  s.name = name;
  s.build = [=](std::uint64_t seed) {
    graft::set_random_seed(seed * 1000003 + 17);
    auto clone = graft::clone_model(src);
    if (!random_init) clone->set_weights(src->get_weights());
    auto layers = clone->layers();
    if (!layers.empty() && std::dynamic_pointer_cast<graft::InputLayer<float>>(layers.front())) layers.erase(layers.begin());
    if (static_cast<int>(layers.size()) <= drop) throw graft::value_error(name + ": the pretrained model has too few layers");
    layers.resize(layers.size() - static_cast<size_t>(drop));
    auto base = std::make_shared<Sequential<float>>(layers, name + "_base");
    Shape in = src->input_shapes().at(0);
    base->build_input(Shape(in.begin() + 1, in.end()));
    graft::set_random_seed(seed);
    Shape f = base->output_shapes().at(0);
    auto head = head_fn(Shape(f.begin() + 1, f.end()));
    auto model = std::make_shared<Sequential<float>>(name + "_transfer");
    model->add(base);
    model->add(head);
    return recipes::Transfer{model, base, head};
  };
  if (!random_init) s.pretrained = s.build(0).base;
  return s;
}

std::shared_ptr<Sequential<float>> binary_head(const Shape& f) {
  auto h = std::make_shared<Sequential<float>>("new_head");
  h->add(std::make_shared<graft::InputLayer<float>>(f, "features"));
  h->add(std::make_shared<graft::Dense<float>>(1, "sigmoid", true, "head_output"));
  return h;
}

/// examples/cnn_finetune's head: Flatten, Dense 128 relu, Dropout 0.3, Dense softmax.
HeadFn cnn_head(Index classes) {
  return [classes](const Shape& f) {
    auto h = std::make_shared<Sequential<float>>("new_head");
    h->add(std::make_shared<graft::InputLayer<float>>(f, "features"));
    h->add(std::make_shared<graft::Flatten<float>>("head_flatten"));
    h->add(std::make_shared<graft::Dense<float>>(128, "relu", true, "head_dense"));
    h->add(std::make_shared<graft::Dropout<float>>(0.3, "head_dropout"));
    h->add(std::make_shared<graft::Dense<float>>(classes, "softmax", true, "head_output"));
    return h;
  };
}

// ---- running the recipes -------------------------------------------------------------------------

struct RecipeRun {
  RecipeRun(std::string n, std::string d, std::function<recipes::Outcome(recipes::SeedData&)> r)
      : name(std::move(n)), description(std::move(d)), run(std::move(r)) {}
  std::string name, description;
  std::function<recipes::Outcome(recipes::SeedData&)> run;
  std::vector<std::uint64_t> seeds;
  std::vector<recipes::Outcome> outcomes;
  double seconds = 0;
};

struct TaskRun {
  std::string name, description;
  recipes::TaskConfig config;
  std::vector<RecipeRun> recipes;
  Index train_per_seed = 0, test_size = 0;
  double seconds = 0;
};

bool wanted(const Args& a, const std::string& recipe) {
  return a.recipes.empty() || std::find(a.recipes.begin(), a.recipes.end(), recipe) != a.recipes.end();
}

/// The recipes of a task on the source `s` (plus scratch on `random_init`, and extra ones).
std::vector<RecipeRun> standard_recipes(const Args& a, const recipes::TaskConfig& c, const recipes::Source& s,
                                        const recipes::Source& random_init) {
  using recipes::SeedData;
  const std::string p = c.plain_optimizer;
  std::vector<RecipeRun> r = {
      {"scratch", "no transfer: the same network from random weights, " + c.scratch_optimizer + "(" + num(c.lr_scratch) + ")",
       [&c, &random_init](SeedData& d) { return recipes::scratch(c, random_init, d); }},
      {"plain", "freeze, head at " + p + "(" + num(c.lr_head) + "), unfreeze, " + p + "(" + num(c.lr_low) + ")",
       [&c, &s](SeedData& d) { return recipes::plain(c, s, d); }},
      {"plain_same_lr", "plain without lowering the rate: " + p + "(" + num(c.lr_head) + ") in both phases",
       [&c, &s](SeedData& d) { return recipes::plain_same_lr(c, s, d); }},
      {"discriminative", "head as plain, then every group at " + p + "(" + num(c.lr_head) + ") / " + num(c.discriminative_factor) + "^k",
       [&c, &s](SeedData& d) { return recipes::discriminative(c, s, d); }},
      {"gradual", "GradualUnfreezing, " + p + "(" + num(c.lr_head) + ") throughout",
       [&c, &s](SeedData& d) { return recipes::gradual(c, s, d); }},
      {"one_cycle", "lr_find + OneCycle on the head, lr_find + OneCycle unfrozen (Adam)",
       [&c, &s](SeedData& d) { return recipes::one_cycle(c, s, d); }},
      {"sgdr", "head at Adam(" + num(c.lr_adam) + "), then CosineDecayRestarts from it",
       [&c, &s](SeedData& d) { return recipes::sgdr(c, s, d); }},
      {"fine_tune", "graft::fine_tune, fastai's defaults (Adam)", [&c, &s](SeedData& d) { return recipes::fine_tune(c, s, d); }},
      {"l2sp", "L2-SP (alpha " + fmt(c.l2sp_alpha, 2) + ", beta " + fmt(c.l2sp_beta, 2) + "), Adam(" + num(c.lr_adam) + ") both phases",
       [&c, &s](SeedData& d) { return recipes::l2sp(c, s, d); }},
  };
  std::vector<RecipeRun> kept;
  for (auto& x : r)
    if (wanted(a, x.name)) kept.push_back(std::move(x));
  return kept;
}

void run_task(const Args& a, TaskRun& task, const Dataset<float>& pool, Index n_train, const Dataset<float>& test) {
  auto t0 = Clock::now();
  task.train_per_seed = std::min(n_train, pool.size());
  task.test_size = test.size();
  std::cout << "\n== Task " << task.name << ": " << task.description << "\n";
  for (int k = 0; k < a.seeds; ++k) {
    const std::uint64_t seed = a.seed + static_cast<std::uint64_t>(k);
    // the seed's labelled images, the same for every recipe
    Dataset<float> train = graft::data::take(graft::data::shuffled(pool, seed), task.train_per_seed);
    recipes::SeedData d;
    d.seed = seed;
    d.train = &train;
    d.test = &test;
    std::ostringstream line;
    line << "seed " << seed << ":";
    for (auto& r : task.recipes) {
      auto t1 = Clock::now();
      recipes::Outcome o = r.run(d);
      o.seconds = seconds_since(t1);
      r.seconds += o.seconds;
      r.seeds.push_back(seed);
      r.outcomes.push_back(std::move(o));
      line << " " << r.name << " " << pct(r.outcomes.back().accuracy);
      if (!a.quiet) std::cout << "  seed " << seed << "  " << std::left << std::setw(22) << r.name << std::right << " "
                              << pct(r.outcomes.back().accuracy) << "  (" << secs(r.outcomes.back().seconds) << ")\n";
    }
    if (a.quiet) std::cout << line.str() << "\n";
  }
  task.seconds = seconds_since(t0);
}

/// Recipe minus reference, seed by seed: mean, standard error of the mean, seeds where it is higher.
struct Paired {
  double mean = 0, stderr_ = 0;
  int wins = 0;
};
Paired paired(const RecipeRun& r, const RecipeRun& ref) {
  std::vector<double> diff;
  Paired p;
  for (size_t i = 0; i < r.outcomes.size() && i < ref.outcomes.size(); ++i) {
    diff.push_back(r.outcomes[i].accuracy - ref.outcomes[i].accuracy);
    p.wins += diff.back() > 0;
  }
  p.mean = mean(diff);
  p.stderr_ = diff.empty() ? 0 : stddev(diff) / std::sqrt(static_cast<double>(diff.size()));
  return p;
}

void print_table(const TaskRun& t) {
  std::cout << "\n== " << t.name << ": test accuracy (" << t.test_size << " test images, " << t.train_per_seed
            << " labelled training images per seed, chance " << pct(t.config.chance, 0) << ")\n";
  if (t.recipes.empty()) return;
  const RecipeRun* scratch = nullptr;
  for (auto& r : t.recipes)
    if (r.name == "scratch") scratch = &r;
  std::cout << "  " << std::left << std::setw(22) << "recipe" << std::right;
  for (auto s : t.recipes.front().seeds) std::cout << std::setw(9) << ("seed " + std::to_string(s));
  std::cout << "   mean ± std          time" << (scratch ? "   vs scratch" : "") << "\n";
  for (auto& r : t.recipes) {
    std::vector<double> acc;
    for (auto& o : r.outcomes) acc.push_back(o.accuracy);
    std::cout << "  " << std::left << std::setw(22) << r.name << std::right;
    for (double v : acc) std::cout << std::setw(9) << pct(v);
    std::cout << "   " << pct(mean(acc)) << " ± " << pct(stddev(acc)) << std::setw(9) << secs(r.seconds);
    if (scratch && &r != scratch) {
      Paired p = paired(r, *scratch);
      std::cout << "   " << (p.mean >= 0 ? "+" : "") << fmt(100 * p.mean, 2) << " ± " << fmt(100 * p.stderr_, 2) << " pts, "
                << p.wins << "/" << acc.size();
    }
    std::cout << "\n";
  }
  if (scratch)
    std::cout << "  (last columns: the mean paired difference to scratch on the same seeds ± its standard error, in\n"
                 "   percentage points, and on how many seeds the recipe beat scratch)\n";
  for (auto& r : t.recipes) std::cout << "  " << std::left << std::setw(22) << r.name << std::right << r.description << "\n";
}

nlohmann::json lr_json(const graft::LRFindResult& r) {
  return {{"lrs", r.lrs}, {"losses", r.losses}, {"raw_losses", r.raw_losses}, {"suggestion", r.suggestion()},
          {"valley", r.valley}, {"minimum", r.minimum}, {"steep", r.steep}};
}

int run(const Args& args) {
  const auto t_start = Clock::now();
  fs::create_directories(args.out_dir);
  nlohmann::json report;
  auto t0 = Clock::now();
  Data data = load_data(args);
  const double t_data = seconds_since(t0);
  std::cout << "Fashion-MNIST from " << args.data_dir << " (" << secs(t_data) << "); preset " << args.preset << ", "
            << args.seeds << " seed" << (args.seeds == 1 ? "" : "s") << " from " << args.seed << ", " << args.threads
            << " thread" << (args.threads == 1 ? "" : "s") << "\n";

  std::vector<TaskRun> tasks;
  // Sources outlive the task runs (the recipes hold references to them).
  std::vector<std::unique_ptr<recipes::Source>> sources;
  auto keep = [&](recipes::Source s) -> const recipes::Source& {
    sources.push_back(std::make_unique<recipes::Source>(std::move(s)));
    return *sources.back();
  };

  std::vector<std::unique_ptr<recipes::TaskConfig>> configs;
  if (args.task_mlp) {
    auto model_a = get_model_a(args, data, report);
    const auto& a_src = keep(make_source("model_A", model_a, 1, binary_head, false));
    const auto& random_src = keep(make_source("random", model_a, 1, binary_head, true));
    TaskRun t;
    t.name = "mlp";
    t.description = "sandal vs shirt, MLP (Hands-On ML ch. 11): model A's layers but its last, new Dense(1, sigmoid)";
    auto& c = t.config;
    c.name = "mlp";
    c.loss = "binary_crossentropy";
    c.chance = 0.5;
    c.epochs_frozen = 4, c.epochs_unfrozen = 16;  // the book's 4 + 16
    c.plain_optimizer = "SGD", c.lr_head = 1e-2, c.lr_low = 1e-4;  // the printed book's rates
    c.scratch_optimizer = "SGD", c.lr_scratch = 1e-3;               // the book's model B
    configs.push_back(std::make_unique<recipes::TaskConfig>(c));
    const recipes::TaskConfig& cc = *configs.back();
    t.recipes = standard_recipes(args, cc, a_src, random_src);
    if (wanted(args, "autoencoder") || wanted(args, "autoencoder_fine_tune")) {
      auto encoder = get_encoder(args, data, report);
      const auto& ae_src = keep(make_source("encoder", encoder, 0, binary_head, false));
      if (wanted(args, "autoencoder"))
        t.recipes.push_back({"autoencoder", "plain on the encoder of an autoencoder trained without labels",
                             [&cc, &ae_src](recipes::SeedData& d) { return recipes::plain(cc, ae_src, d); }});
      if (wanted(args, "autoencoder_fine_tune"))
        t.recipes.push_back({"autoencoder_fine_tune", "fine_tune on the encoder of the same autoencoder",
                             [&cc, &ae_src](recipes::SeedData& d) { return recipes::fine_tune(cc, ae_src, d); }});
    }
    tasks.push_back(std::move(t));
  }
  if (args.task_cnn) {
    auto convnet = get_convnet(args, data, report);
    const auto& cnn_src = keep(make_source("conv_base", convnet, 2, cnn_head(5), false));
    const auto& random_src = keep(make_source("random", convnet, 2, cnn_head(5), true));
    TaskRun t;
    t.name = "cnn";
    t.description = "sandal, shirt, sneaker, bag, ankle boot; conv base pretrained on the other five classes, new dense head";
    auto& c = t.config;
    c.name = "cnn";
    c.loss = "sparse_categorical_crossentropy";
    c.chance = 0.2;
    c.epochs_frozen = args.cnn_epochs_frozen, c.epochs_unfrozen = args.cnn_epochs_unfrozen;
    c.plain_optimizer = "Adam", c.lr_head = 1e-3, c.lr_low = 1e-5;  // the Keras transfer-learning guide
    c.scratch_optimizer = "Adam", c.lr_scratch = 1e-3;
    configs.push_back(std::make_unique<recipes::TaskConfig>(c));
    t.recipes = standard_recipes(args, *configs.back(), cnn_src, random_src);
    tasks.push_back(std::move(t));
  }
  const double t_pretrain = seconds_since(t0) - t_data;

  for (auto& t : tasks) {
    if (t.name == "mlp") run_task(args, t, data.pool_b, args.train_b, data.test_b);
    else run_task(args, t, data.pool_cnn, args.cnn_train, data.test_cnn);
  }

  // ---- tables, files
  for (auto& t : tasks) print_table(t);
  nlohmann::json jr = nlohmann::json::array(), jruns = nlohmann::json::array(), jtasks = nlohmann::json::object();
  std::vector<std::string> failures;
  bool headline_written = false;
  for (auto& t : tasks) {
    jtasks[t.name] = {{"description", t.description}, {"train_images_per_seed", t.train_per_seed}, {"test_images", t.test_size},
                      {"chance", t.config.chance}, {"epochs_frozen", t.config.epochs_frozen},
                      {"epochs_unfrozen", t.config.epochs_unfrozen}, {"seconds", t.seconds}};
    for (auto& r : t.recipes) {
      nlohmann::json seeds = nlohmann::json::array();
      std::vector<double> acc;
      for (size_t i = 0; i < r.outcomes.size(); ++i) {
        const auto& o = r.outcomes[i];
        acc.push_back(o.accuracy);
        nlohmann::json s = {{"seed", r.seeds[i]}, {"accuracy", o.accuracy}, {"loss", o.loss}, {"seconds", o.seconds}};
        for (auto& kv : o.info.items()) s[kv.key()] = kv.value();
        seeds.push_back(s);
        if (!(o.accuracy >= t.config.chance + 0.15))
          failures.push_back(t.name + "/" + r.name + " seed " + std::to_string(r.seeds[i]) + ": accuracy " + pct(o.accuracy) +
                             " is not 15 points above chance");
        for (auto& [stage, lf] : o.lr_finds) {
          jruns.push_back({{"task", t.name}, {"recipe", r.name}, {"seed", r.seeds[i]}, {"stage", stage},
                           {"suggestion", lf.suggestion()}, {"points", lf.lrs.size()}});
          if (i == 0) {
            const std::string stem = (fs::path(args.out_dir) / ("lr_find_" + t.name + "_" + stage)).string();
            const std::string title = "LR finder, " + t.name + " task, " + stage + " (seed " + std::to_string(r.seeds[i]) + ")";
            lf.write_csv(stem + ".csv");
            lf.write_svg(stem + ".svg", title);
            if (!headline_written) {  // the first: the mlp task's head (or the first task run)
              lf.write_csv((fs::path(args.out_dir) / "lr_find.csv").string());
              lf.write_svg((fs::path(args.out_dir) / "lr_find.svg").string(), title);
              report["lr_find"] = lr_json(lf);
              report["lr_find"]["task"] = t.name;
              report["lr_find"]["stage"] = stage;
              report["lr_find"]["seed"] = r.seeds[i];
              headline_written = true;
            }
          }
        }
      }
      jr.push_back({{"name", r.name}, {"task", t.name}, {"description", r.description}, {"seeds", seeds}, {"mean", mean(acc)},
                    {"std", stddev(acc)}, {"seconds", r.seconds}});
      for (auto& ref : t.recipes)
        if (ref.name == "scratch" && &ref != &r) {
          Paired p = paired(r, ref);
          jr.back()["vs_scratch"] = {{"mean_difference", p.mean}, {"stderr", p.stderr_}, {"seeds_better", p.wins}};
        }
    }
  }
  report["recipes"] = jr;
  report["lr_find_runs"] = jruns;
  report["tasks"] = jtasks;
  const double t_total = seconds_since(t_start);
  report["config"] = {{"preset", args.preset}, {"seeds", args.seeds}, {"first_seed", args.seed}, {"threads", args.threads},
                      {"epochs_a", args.epochs_a}, {"ae_epochs", args.ae_epochs}, {"ae_images", args.ae_images},
                      {"train_b", args.train_b}, {"cnn_pretrain", args.cnn_pretrain},
                      {"cnn_pretrain_epochs", args.cnn_pretrain_epochs}, {"cnn_train", args.cnn_train}, {"cnn_test", args.cnn_test}};
  report["seconds"] = {{"data", t_data}, {"pretraining", t_pretrain}, {"total", t_total}};
  report["note"] = "accuracy: test set; std: sample standard deviation over the seeds. Seed s draws the labelled "
                   "training images and the new head's initial weights, the same for every recipe.";
  const std::string path_json = (fs::path(args.out_dir) / "results.json").string();
  {
    std::ofstream o(path_json);
    o << report.dump(2) << "\n";
    if (!o) throw graft::io_error(path_json + ": cannot write");
  }
  std::cout << "\n== Wall time (" << args.threads << " thread" << (args.threads == 1 ? "" : "s") << "): data " << secs(t_data)
            << ", pretraining " << secs(t_pretrain);
  for (auto& t : tasks) std::cout << ", " << t.name << " recipes " << secs(t.seconds);
  std::cout << "; total " << secs(t_total) << "\n";
  if (report.contains("lr_find"))
    std::cout << "LR finder (" << report["lr_find"]["task"].get<std::string>() << " task, "
              << report["lr_find"]["stage"].get<std::string>() << ", seed " << report["lr_find"]["seed"] << "): suggestion (valley) "
              << report["lr_find"]["suggestion"].get<double>() << "; curve in lr_find.csv / lr_find.svg\n";
  std::cout << "wrote " << path_json << "\n";

  if (args.check) {
    // results.json must read back with every recipe run
    std::ifstream in(path_json);
    nlohmann::json back = nlohmann::json::parse(in);
    size_t expected = 0;
    for (auto& t : tasks) expected += t.recipes.size();
    if (!back.contains("recipes") || back["recipes"].size() != expected)
      failures.push_back("results.json does not hold every recipe");
    for (auto& r : back["recipes"])
      if (r["seeds"].size() != static_cast<size_t>(args.seeds)) failures.push_back("results.json: a recipe misses seeds");
    if (!fs::exists(fs::path(args.out_dir) / "lr_find.csv") || !fs::exists(fs::path(args.out_dir) / "lr_find.svg"))
      if (wanted(args, "one_cycle")) failures.push_back("lr_find.csv / lr_find.svg not written");
    for (auto& f : failures) std::cerr << "CHECK FAILED: " << f << "\n";
    if (!failures.empty()) return 1;
    std::cout << "CHECK passed: every recipe beats chance by 15 points on every seed; results.json complete\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example_args::program_name() = "finetune_recipes";
  Args args = parse_args(argc, argv);
  Eigen::setNbThreads(args.threads);
#ifdef _OPENMP
  omp_set_num_threads(args.threads);
#endif
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::cerr << "finetune_recipes: " << e.what() << "\n";
    return 1;
  }
}
