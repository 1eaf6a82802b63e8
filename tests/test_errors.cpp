// Every wrong shape, unknown name and bad argument raises the right graft error kind, with a
// message that names what is wrong and where.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace graft;

namespace {

using KTs = std::vector<KerasTensor<float>>;

/// Run f; it must throw exactly the graft error kind E, whose what() starts with
/// "[graft.<kind>]" and contains every part.
template <class E, class F>
void expect_error(const char* kind, F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const E& e) {
    const std::string w = e.what();
    INFO("message: " << w);
    CHECK(e.kind() == kind);
    CHECK_THAT(w, Catch::StartsWith(std::string("[graft.") + kind + "] "));
    for (const auto& p : parts) CHECK_THAT(w, Catch::Contains(p));
    return;
  } catch (const error& e) {
    FAIL("expected a graft." << kind << " error, got: " << e.what());
  } catch (const std::exception& e) {
    FAIL("expected a graft." << kind << " error, got a non-graft exception: " << e.what());
  }
  FAIL("expected a graft." << kind << " error, nothing was thrown");
}
#define EXPECT_VALUE(expr, ...) expect_error<value_error>("value", [&] { expr; }, {__VA_ARGS__})
#define EXPECT_SHAPE(expr, ...) expect_error<shape_error>("shape", [&] { expr; }, {__VA_ARGS__})
#define EXPECT_UNSUPPORTED(expr, ...) expect_error<unsupported_error>("unsupported", [&] { expr; }, {__VA_ARGS__})
#define EXPECT_FORMAT(expr, ...) expect_error<format_error>("format", [&] { expr; }, {__VA_ARGS__})

std::shared_ptr<Sequential<float>> small_model(const std::string& name) {
  auto m = std::make_shared<Sequential<float>>(name);
  m->add(std::make_shared<InputLayer<float>>(Shape{4}, name + "_in"));
  m->add(make<Dense>(3, "relu", true, name + "_d"));
  m->add(make<Dense>(1, "linear", true, name + "_out"));
  return m;
}

}  // namespace

TEST_CASE("error kinds share one base and carry their kind", "[core][errors]") {
  CHECK_THROWS_AS(throw shape_error("x"), error);
  CHECK_THROWS_AS(throw io_error("x"), std::runtime_error);
  format_error f("file.h5: bad");
  CHECK(f.kind() == "format");
  CHECK(f.message() == "file.h5: bad");
  CHECK(std::string(f.what()) == "[graft.format] file.h5: bad");
  expect_error<unsupported_error>("unsupported", [] { rethrow_with_prefix(unsupported_error("layer 'x'"), "m.h5"); },
                                  {"m.h5: layer 'x'"});
  expect_error<io_error>("io", [] { rethrow_with_prefix(io_error("cannot open"), "a.h5"); }, {"a.h5: cannot open"});
}

TEST_CASE("bad layer arguments are value errors that name the layer", "[core][errors]") {
  EXPECT_VALUE(Dense<float>(0), "Dense", "units must be positive", "0");
  EXPECT_VALUE(Dense<float>(-3, "relu", true, "my_dense"), "layer 'my_dense' (Dense)", "-3");
  EXPECT_UNSUPPORTED(Dense<float>(3, "relux"), "Dense", "unknown activation 'relux'");
  EXPECT_UNSUPPORTED(Dense<float>(3, "relux", true, "head"), "layer 'head' (Dense)", "'relux'");
  EXPECT_UNSUPPORTED(Activation<float>("swishy", "act_1"), "layer 'act_1' (Activation)", "unknown activation 'swishy'");
  EXPECT_VALUE(Dropout<float>(1.0), "Dropout", "rate must be in [0, 1)");
  EXPECT_VALUE(Dropout<float>(-0.1), "Dropout", "rate");
  EXPECT_VALUE(ReLU<float>(-1, -0.5), "ReLU", "negative_slope");
  EXPECT_VALUE(Reshape<float>(Shape{-1, -1}), "Reshape", "at most one dimension can be -1");
  EXPECT_VALUE(Reshape<float>(Shape{3, -2}), "Reshape", "positive or -1");
  EXPECT_VALUE(GaussianDropout<float>(1.5), "GaussianDropout", "rate");
}

TEST_CASE("calling layers on incompatible symbolic tensors raises errors naming the layer and shapes",
          "[core][errors]") {
  auto x = Input<float>({12}, "x12");
  auto x34 = Input<float>({3, 4}, "x34");
  auto x25 = Input<float>({2, 5}, "x25");
  auto x3 = Input<float>({3}, "x3");
  auto x4 = Input<float>({4}, "x4");
  EXPECT_SHAPE((*make<Reshape>(Shape{5}, "rs"))(x), "layer 'rs' (Reshape)", "cannot reshape 12 values per sample into (5,)");
  EXPECT_VALUE((*make<Softmax>(3, "sm"))(x), "layer 'sm' (Softmax)", "axis 3 is out of range for rank 2");
  EXPECT_SHAPE((*make<Concatenate>(-1, "cc"))(KTs{x34, x25}), "layer 'cc' (Concatenate)", "(None, 3, 4)", "(None, 2, 5)",
               "differ outside the concatenation axis");
  EXPECT_SHAPE((*make<Concatenate>(1, "cc2"))(KTs{x34, x}), "layer 'cc2' (Concatenate)", "different rank");
  EXPECT_SHAPE((*make<Add>("ad"))(KTs{x3, x4}), "layer 'ad' (Add)", "cannot be broadcast together", "(None, 3)",
               "(None, 4)");
  EXPECT_SHAPE((*make<Subtract>("sb"))(KTs{x3, x3, x3}), "layer 'sb' (Subtract)", "exactly 2 inputs, got 3");
  EXPECT_VALUE((*make<Add>("ad1"))(x3), "layer 'ad1' (Add)", "expects a list of inputs");
  auto d = make<Dense>(2, "linear", true, "two_in");
  EXPECT_VALUE(d->call({x3, x3}, true), "layer 'two_in' (Dense)", "takes one input, got 2");
  Dense<float> on_stack(2, "linear", true, "stack_dense");
  EXPECT_VALUE(on_stack(x3), "layer 'stack_dense'", "std::shared_ptr");
  EXPECT_VALUE((*make<PReLU>(std::vector<int>{3}, "pr"))(x34), "layer 'pr' (PReLU)", "shared axis 3");
  EXPECT_SHAPE((*make<Dense>(2, "linear", true, "dn"))(Input<float>({-1}, "unknown_last")), "layer 'dn' (Dense)",
               "last input dimension must be known");
  // a built Dense fed the wrong width at run time
  auto built = make<Dense>(2, "linear", true, "built4");
  (*built)(x4);
  Tensor<float> bad({2, 5}), y;
  auto st = built->make_state();
  EXPECT_SHAPE(built->forward({&bad}, {&y}, st.get(), false), "layer 'built4' (Dense)", "last dimension 4",
               "(2, 5)");
  EXPECT_SHAPE((*built)(Input<float>({5}, "x5")), "layer 'built4' (Dense)", "last dimension 4", "(None, 5)");
}

TEST_CASE("model construction errors name the layers involved", "[core][errors]") {
  auto x1 = Input<float>({3}, "first_in");
  auto x2 = Input<float>({3}, "second_in");
  auto y2 = (*make<Dense>(2, "linear", true, "uses_second"))(x2);
  EXPECT_VALUE(Model<float>(x1, y2), "graph disconnected", "'second_in'");
  auto a = (*make<Dense>(2, "linear", true, "dup"))(x1);
  auto b = (*make<Dense>(2, "linear", true, "dup"))(a);
  EXPECT_VALUE(Model<float>(x1, b), "layer names must be unique", "'dup'");
  EXPECT_VALUE(Model<float>(KTs{x1}, KTs{}), "at least one output");
  EXPECT_VALUE(Model<float>(KTs{x1, x1}, KTs{a}), "same input tensor");

  Sequential<float> s("seq_err");
  s.add(make<Dense>(2, "linear", true, "s_d"));
  EXPECT_VALUE(s.add(make<Dense>(2, "linear", true, "s_d")), "Sequential 'seq_err'", "'s_d' is already in the model");
  EXPECT_VALUE(s.add(std::make_shared<InputLayer<float>>(Shape{3})), "Sequential 'seq_err'",
               "InputLayer can only be the first layer");
  EXPECT_VALUE(s.add(std::shared_ptr<Layer<float>>()), "null layer");
  Sequential<float> empty("empty_seq");
  EXPECT_VALUE(empty.predict(Tensor<float>({2, 3})), "Sequential 'empty_seq' has no layers");
  EXPECT_VALUE(empty.pop(), "Sequential 'empty_seq'", "empty");
  auto m = small_model("sm");
  EXPECT_VALUE(m->get_layer("nope"), "model 'sm'", "no layer named 'nope'", "sm_d, sm_out");
  EXPECT_VALUE(m->get_layer(5), "model 'sm'", "layer index 5 out of range (2 layers)");
  EXPECT_VALUE(m->layer_output("nope"), "'nope'");
}

TEST_CASE("data of the wrong shape or count is a shape error naming the model and input", "[core][errors]") {
  auto m = small_model("shp");
  EXPECT_SHAPE(m->predict(Tensor<float>({2, 5})), "model 'shp'", "input 0 ('shp_in')", "expects shape (None, 4)",
               "got (2, 5)");
  EXPECT_SHAPE(m->predict(std::vector<Tensor<float>>{Tensor<float>({2, 4}), Tensor<float>({2, 4})}), "model 'shp'",
               "expects 1 input array(s), got 2");
  EXPECT_SHAPE(m->predict(Tensor<float>({2, 4, 3})), "model 'shp'", "(None, 4)", "(2, 4, 3)");
  EXPECT_VALUE(m->predict(Tensor<float>({2, 4}), 0), "batch_size must be positive");

  EXPECT_VALUE(m->fit(Tensor<float>({8, 4}), Tensor<float>({8, 1})), "fit", "model 'shp'", "must be compiled first");
  EXPECT_VALUE(m->train_on_batch({Tensor<float>({8, 4})}, {Tensor<float>({8, 1})}), "train_on_batch", "model 'shp'",
               "compiled");
  m->compile(std::make_shared<SGD<float>>(0.1), "mse");
  FitOptions<float> o;
  o.verbose = 0;
  EXPECT_SHAPE(m->fit(Tensor<float>({8, 4}), Tensor<float>({7, 1}), o), "fit", "8 input samples", "(7, 1)");
  EXPECT_SHAPE(m->fit(Tensor<float>({8, 4}), Tensor<float>(Shape{}), o), "fit", "8 input samples", "()");
  EXPECT_SHAPE(m->fit(std::vector<Tensor<float>>{Tensor<float>({8, 4})}, {Tensor<float>({8, 1}), Tensor<float>({8, 1})}, o),
               "model 'shp' has 1 output(s) but 2 target array(s)");
  EXPECT_SHAPE(m->evaluate({Tensor<float>({8, 4})}, {Tensor<float>({8, 1}), Tensor<float>({8, 1})}), "model 'shp'",
               "2 target array(s)");
  EXPECT_SHAPE(m->fit(Tensor<float>({8, 4}), Tensor<float>({8, 3}), o), "mean_squared_error",
               "y_true has shape (8, 3)", "model output has shape (8, 1)");
  o.validation_split = 1.5;
  EXPECT_VALUE(m->fit(Tensor<float>({8, 4}), Tensor<float>({8, 1}), o), "validation_split must be in [0, 1)");
  o.validation_split = 0;
  o.batch_size = 0;
  EXPECT_VALUE(m->fit(Tensor<float>({8, 4}), Tensor<float>({8, 1}), o), "batch_size");
  o.batch_size = 32;

  auto p = Input<float>({2}, "p_in");
  auto q = Input<float>({2}, "q_in");
  Model<float> two({p, q}, {(*make<Add>("pq"))(KTs{p, q})}, "two_in");
  two.compile(std::make_shared<SGD<float>>(0.1), "mse");
  EXPECT_SHAPE(two.fit({Tensor<float>({8, 2}), Tensor<float>({7, 2})}, {Tensor<float>({8, 2})}, o),
               "different numbers of samples (8 and 7)");
  EXPECT_SHAPE(two.predict({Tensor<float>({8, 2}), Tensor<float>({8, 3})}), "model 'two_in'", "input 1 ('q_in')",
               "(None, 2)", "(8, 3)");
}

TEST_CASE("compile, losses, metrics and optimizers reject what they do not know", "[core][errors]") {
  auto x = Input<float>({3}, "c_in");
  Model<float> m(x, {(*make<Dense>(1, "linear", true, "c_o1"))(x), (*make<Dense>(1, "linear", true, "c_o2"))(x)}, "cm");
  auto sgd = std::make_shared<SGD<float>>(0.1);
  auto mse = make_loss<float>("mse");
  EXPECT_VALUE(m.compile(sgd, {mse, mse, mse}), "model 'cm' has 2 outputs but 3 losses");
  EXPECT_VALUE(m.compile(std::shared_ptr<Optimizer<float>>(), "mse"), "optimizer is required");
  EXPECT_VALUE(m.compile(sgd, {mse, mse}, {}, {1.0}), "one loss weight per output");
  EXPECT_VALUE(m.compile_state(), "model 'cm' is not compiled");

  EXPECT_UNSUPPORTED(make_loss<float>("nope"), "loss 'nope' is not supported");
  EXPECT_UNSUPPORTED(m.compile(sgd, "nope_loss"), "'nope_loss'");
  EXPECT_FORMAT(make_loss<float>(json(42)), "cannot read loss 42");
  EXPECT_UNSUPPORTED(make_loss<float>(json{{"class_name", "MeanSquaredError"}, {"config", {{"reduction", "sum"}}}}),
                     "loss reduction 'sum'");
  Tensor<float> p({2, 3}, {0.2f, 0.3f, 0.5f, 0.1f, 0.1f, 0.8f});
  auto scce = make_loss<float>("sparse_categorical_crossentropy");
  EXPECT_VALUE(scce->compute(Tensor<float>({2}, {0, 5}), p, nullptr, 1.0f), "sparse_categorical_crossentropy",
               "label 5 (sample 1)", "[0, 3)");
  EXPECT_VALUE(scce->compute(Tensor<float>({2}, {1.5f, 0}), p, nullptr, 1.0f), "label 1.5 (sample 0)");
  EXPECT_VALUE(scce->compute(Tensor<float>({2}, {-1, 0}), p, nullptr, 1.0f), "label -1");
  EXPECT_SHAPE(scce->compute(Tensor<float>({3}), p, nullptr, 1.0f), "one class index per sample", "(3,)");
  EXPECT_SHAPE(make_loss<float>("categorical_crossentropy")->compute(Tensor<float>({2, 2}), p, nullptr, 1.0f),
               "categorical_crossentropy", "(2, 2)", "(2, 3)");
  EXPECT_SHAPE(make_loss<float>("kld")->compute(Tensor<float>({3, 2}), p, nullptr, 1.0f), "kl_divergence");

  EXPECT_UNSUPPORTED(make_metric<float>(json("nope"), {2}, {2, 3}), "metric 'nope' is not supported");
  EXPECT_FORMAT(make_metric<float>(json(3), {2}, {2, 3}), "metric", "cannot read 3");
  EXPECT_SHAPE(make_metric<float>(json("categorical_accuracy"), {2, 2}, {2, 3})->update(Tensor<float>({2, 2}), p),
               "categorical_accuracy", "(2, 2)", "(2, 3)");

  EXPECT_UNSUPPORTED(make_optimizer<float>("nope"), "optimizer 'nope' is not supported");
  EXPECT_UNSUPPORTED(m.compile("nadamx", "mse"), "optimizer 'nadamx'");
  EXPECT_FORMAT(make_optimizer<float>(json::array()), "cannot read optimizer");
  EXPECT_UNSUPPORTED(make_optimizer<float>(json{{"class_name", "Adam"}, {"config", {{"use_ema", true}}}}), "use_ema");
  EXPECT_UNSUPPORTED(make_optimizer<float>(json{{"class_name", "Adam"}, {"config", {{"gradient_accumulation_steps", 4}}}}),
                     "gradient_accumulation_steps");
  EXPECT_FORMAT(make_optimizer<float>(json{{"class_name", "SGD"}, {"config", {{"learning_rate", "fast"}}}}),
                "cannot read learning rate", "fast");
  EXPECT_UNSUPPORTED(make_optimizer<float>(json{{"class_name", "SGD"},
                                                {"config", {{"learning_rate", {{"class_name", "CyclicLR"}, {"config", json::object()}}}}}}),
                     "learning-rate schedule 'CyclicLR'");
  EXPECT_VALUE(SGD<float>(-0.1), "SGD", "learning_rate must be >= 0");
  EXPECT_VALUE(SGD<float>(0.1, 1.5), "SGD", "momentum must be in [0, 1]");
  EXPECT_VALUE(SGD<float>(0.1).set_learning_rate(-1), "learning_rate must be >= 0");
  EXPECT_VALUE(ExponentialDecay(0.1, 0, 0.5), "ExponentialDecay", "decay_steps must be positive");
  EXPECT_VALUE(PiecewiseConstantDecay({1, 2}, {1.0, 0.5}), "PiecewiseConstantDecay", "one more entry");
  History h;
  EXPECT_VALUE(h["val_loss"], "History", "no entry 'val_loss'");
}

TEST_CASE("configs that cannot be read say which layer and key", "[core][errors]") {
  auto dense_entry = [](json cfg) { return json{{"class_name", "Dense"}, {"config", cfg}}; };
  auto seq = [](json layers) {
    return json{{"class_name", "Sequential"}, {"config", {{"name", "cfg_seq"}, {"layers", layers}}}};
  };
  json input = {{"class_name", "InputLayer"}, {"config", {{"name", "cfg_in"}, {"batch_input_shape", {nullptr, 3}}}}};
  EXPECT_FORMAT(model_from_config<float>(json{{"config", json::object()}}), "model config has no class_name");
  EXPECT_FORMAT(model_from_config<float>(json{{"class_name", "Sequential"}}), "no 'config'");
  EXPECT_UNSUPPORTED(model_from_config<float>(json{{"class_name", "MyModel"}, {"config", json::object()}}),
                     "model class 'MyModel' is not supported");
  EXPECT_UNSUPPORTED(model_from_config<float>(seq({input, {{"class_name", "FooLayer"}, {"config", {{"name", "foo_1"}}}}})),
                     "layer 'foo_1' (FooLayer)", "not supported");
  EXPECT_UNSUPPORTED(model_from_config<float>(seq({input, {{"class_name", "FooLayer"}, {"config", {{"name", "foo_1"}}}}}),
                                              "model.h5"),
                     "model.h5: layer 'foo_1' (FooLayer)");
  EXPECT_UNSUPPORTED(model_from_config<float>(seq({input, {{"class_name", "Lambda"}, {"config", {{"name", "lam"}}}}})),
                     "layer 'lam' (Lambda)", "Python code");
  EXPECT_FORMAT(model_from_config<float>(seq({input, dense_entry({{"name", "d"}, {"units", "abc"}})})),
                "layer 'd' (Dense)", "'units' should be an integer", "\"abc\"");
  EXPECT_FORMAT(model_from_config<float>(seq({input, dense_entry({{"name", "d"}})})), "layer 'd' (Dense)",
                "config has no 'units'");
  EXPECT_UNSUPPORTED(model_from_config<float>(seq({input, dense_entry({{"name", "d"}, {"units", 2}, {"activation", "zz"}})})),
                     "layer 'd' (Dense)", "unknown activation 'zz'");
  EXPECT_UNSUPPORTED(model_from_config<float>(seq({input, dense_entry({{"name", "d"}, {"units", 2}, {"kernel_initializer", "zz"}})})),
                     "layer 'd' (Dense)", "unknown initializer 'zz'");
  EXPECT_UNSUPPORTED(
      model_from_config<float>(seq({input, dense_entry({{"name", "d"}, {"units", 2},
                                                       {"activity_regularizer", {{"class_name", "L2"}, {"config", {{"l2", 0.1}}}}}})})),
      "layer 'd' (Dense)", "activity_regularizer");
  EXPECT_UNSUPPORTED(model_from_config<float>(seq({input, dense_entry({{"name", "d"}, {"units", 2}, {"kernel_regularizer", "L3"}})})),
                     "layer 'd' (Dense)", "regularizer 'L3'");
  EXPECT_UNSUPPORTED(
      model_from_config<float>(seq({input, {{"class_name", "Flatten"}, {"config", {{"name", "fl"}, {"data_format", "channels_first"}}}}})),
      "layer 'fl' (Flatten)", "channels_last", "channels_first");
  EXPECT_FORMAT(model_from_config<float>(json{{"class_name", "Sequential"}, {"config", {{"name", "s"}}}}), "Sequential 's'",
                "no 'layers' list");
  EXPECT_FORMAT(model_from_config<float>(seq({input, {{"config", {{"name", "x"}}}}})), "layer entry without class_name");
  // a Functional graph that refers to a layer that does not exist
  json f = json::parse(R"({"class_name": "Functional", "config": {"name": "fg", "layers": [
      {"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [null, 3]}, "inbound_nodes": []},
      {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2}, "inbound_nodes": [[["ghost", 0, 0, {}]]]}],
      "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}})");
  EXPECT_FORMAT(model_from_config<float>(f), "model 'fg'", "unknown layer 'ghost'");
  json g = f;
  g["config"]["layers"][1]["inbound_nodes"] = json::parse(R"([[["in", 0, 0, {}]]])");
  g["config"]["output_layers"] = json::parse(R"([["d", 3, 0]])");
  EXPECT_FORMAT(model_from_config<float>(g), "model 'fg'", "output 'd' node 3 does not exist");
  json h = f;
  h["config"]["layers"][1]["inbound_nodes"] = json::parse(R"([[["in", 0, 0, {}]]])");
  h["config"]["layers"][1]["config"]["units"] = 2;
  h["config"]["layers"].push_back(h["config"]["layers"][1]);
  EXPECT_FORMAT(model_from_config<float>(h), "model 'fg'", "two layers are named 'd'");
  EXPECT_FORMAT(model_from_json<float>("{not json", "model.json"), "model.json: model JSON does not parse");
}

TEST_CASE("tensor misuse is reported with the shapes involved", "[core][errors]") {
  EXPECT_SHAPE(Tensor<float>({2, 2}, {1, 2, 3}), "Tensor", "3 values given for shape (2, 2)");
  Tensor<float> t({2, 2});
  EXPECT_SHAPE(t.reshape({3}), "cannot reshape (2, 2) into (3,)");
  EXPECT_VALUE(t.slice_rows(1, 5), "rows [1, 6) out of range for shape (2, 2)");
  EXPECT_SHAPE(Tensor<float>({-1, 2}), "cannot allocate the symbolic shape (None, 2)");
  EXPECT_SHAPE(t.matrix(3, 3), "3x3 view does not fit shape (2, 2)");
  EXPECT_VALUE(normalize_axis(-4, 3, "here"), "here: axis -4 is out of range for rank 3");
  CHECK(normalize_axis(-1, 3, "here") == 2);
}
