// The README's custom-layer recipe: a user layer registered under a Keras class name loads from and
// saves to .h5 files, trains, and passes the gradient check.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include "gradcheck.hpp"

namespace {
template <class T>
class Scale : public graft::UnaryLayer<T> {  // y = factor * x
 public:
  explicit Scale(double factor, std::string name = {}) : graft::UnaryLayer<T>(std::move(name)), f_(factor) {}
  std::string class_name() const override { return "Scale"; }
  graft::Shape output_shape(const graft::Shape& in) const override { return in; }
  void forward1(const graft::Tensor<T>& x, graft::Tensor<T>& y, graft::CallState*, bool) override {
    y.resize(x.shape());
    y.array() = x.array() * T(f_);
  }
  void backward1(const graft::Tensor<T>& x, const graft::Tensor<T>&, const graft::Tensor<T>& dy,
                 graft::Tensor<T>* dx, graft::CallState*) override {
    if (dx) {
      dx->resize(x.shape());
      dx->array() = dy.array() * T(f_);
    }
  }
  graft::json get_config() const override {
    auto c = this->base_config();
    c["factor"] = f_;
    return c;
  }
  static std::shared_ptr<graft::Layer<T>> from_config(const graft::json& j) {
    auto l = std::make_shared<Scale>(j.at("factor").get<double>());
    graft::apply_base_config(*l, graft::Config(j, "Scale"));
    return l;
  }
 private:
  double f_;
};
}  // namespace

TEST_CASE("a registered custom layer loads, trains, saves and passes the gradient check", "[custom]") {
  graft::register_layer<Scale>("Scale");
  graft::Sequential<float> m("custom");
  m.add<graft::InputLayer>(graft::Shape{3});
  m.add<graft::Dense>(4, "tanh");
  m.add(std::make_shared<Scale<float>>(2.5, "scale"));
  m.add<graft::Dense>(1);
  m.compile("sgd", "mse");
  graft::Tensor<float> x({8, 3}, 0.3f), y({8, 1}, 1.0f);
  graft::FitOptions<float> o;
  o.verbose = 0;
  o.epochs = 3;
  m.fit(x, y, o);
  const std::string p = "/tmp/graft-custom-layer.h5";
  graft::save_model(m, p);
  auto back = graft::load_model<float>(p);
  CHECK(back->get_layer("scale")->class_name() == "Scale");
  CHECK(back->predict(x) == m.predict(x));
  CHECK(back->compiled());
  Scale<double> s(-1.5);
  graft::Rng rng(3);
  graft_test::check_layer_gradients(s, {graft_test::random_tensor({2, 5}, rng)});
}
