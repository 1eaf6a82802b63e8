// A program using graft the way a user would: build, train briefly, save, load, predict.
#include <graft/graft.hpp>

#include <cstdio>
#include <iostream>

int main() {
  graft::set_random_seed(7);
  graft::Sequential<float> model("consumer");
  model.add<graft::InputLayer>(graft::Shape{4});
  model.add<graft::Dense>(8, "relu");
  model.add<graft::Dense>(1, "sigmoid");
  model.compile(std::make_shared<graft::SGD<float>>(0.1), "binary_crossentropy", {"accuracy"});
  graft::Tensor<float> x({64, 4}), y({64, 1});
  graft::Rng rng(1);
  for (graft::Index i = 0; i < 64; ++i) {
    float s = 0;
    for (graft::Index j = 0; j < 4; ++j) s += (x[i * 4 + j] = static_cast<float>(rng.uniform(-1, 1)));
    y[i] = s > 0 ? 1.f : 0.f;
  }
  graft::FitOptions<float> o;
  o.epochs = 30;
  o.verbose = 0;
  auto h = model.fit(x, y, o);
  double first = h["loss"].front(), last = h["loss"].back();
  std::cout << "loss " << first << " -> " << last << "\n";
  if (!(last < first)) return 1;
  graft::save_model(model, "consumer_model.h5");
  auto back = graft::load_model<float>("consumer_model.h5");
  if (!(back->predict(x) == model.predict(x))) return 2;
  std::remove("consumer_model.h5");
  return 0;
}
