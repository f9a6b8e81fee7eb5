// nn::Module: registration, dotted parameter names and order, train/eval recursion, zero_grad, in-place moves.
#include "support.h"

using namespace nash;
using nash_test::expect_error;

namespace {

// A module with its own parameter, a buffer and a nested Sequential, to exercise naming and recursion.
class Block : public nn::Module {
 public:
  Block() : Module("Block") {
    scale = register_parameter("scale", ones({4}));
    count = register_buffer("count", zeros({1}));
    net = register_module("net", std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
                                     std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::ReLU>(),
                                     std::make_shared<nn::Linear>(4, 4, false)}));
  }
  Tensor forward(const Tensor& x) override { return net->forward(x) * scale; }
  void register_twice() { register_parameter("scale", ones({1})); }
  void on_train_changed() override { ++mode_changes; }
  Tensor scale, count;
  std::shared_ptr<nn::Sequential> net;
  int mode_changes = 0;
};

std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> r;
  for (auto& p : named) r.push_back(p.first);
  return r;
}

}  // namespace

TEST(Module, NamedParametersAreDottedAndInRegistrationOrder) {
  auto outer = std::make_shared<nn::Sequential>();
  outer->push_back(std::make_shared<Block>()).push_back(std::make_shared<nn::Linear>(4, 2));
  std::vector<std::string> want{"0.scale", "0.net.0.weight", "0.net.0.bias", "0.net.2.weight", "1.weight", "1.bias"};
  EXPECT_EQ(names(outer->named_parameters()), want);
  EXPECT_TRUE(outer->named_parameters(false).empty());
  EXPECT_EQ(names(outer->named_buffers()), std::vector<std::string>{"0.count"});
  EXPECT_EQ(outer->parameters().size(), want.size());
  EXPECT_EQ(outer->num_parameters(), 4 + 12 + 4 + 16 + 8 + 2);
  std::vector<std::string> children;
  for (auto& c : outer->named_children()) children.push_back(c.first);
  EXPECT_EQ(children, (std::vector<std::string>{"0", "1"}));
}

TEST(Module, SharedSubmodulesAreListedOnce) {
  auto lin = std::make_shared<nn::Linear>(2, 2);
  nn::Sequential seq{lin, std::make_shared<nn::Tanh>(), lin};
  EXPECT_EQ(names(seq.named_parameters()), (std::vector<std::string>{"0.weight", "0.bias"}));
  EXPECT_EQ(seq.num_parameters(), 6);
  optim::SGD opt(seq.parameters());  // would reject a parameter listed twice
  seq.to(DType::Float64);            // converting a shared module twice is harmless
  EXPECT_EQ(lin->weight.dtype(), DType::Float64);
}

TEST(Module, MembersAreTheRegisteredTensors) {
  nn::Linear lin(3, 2);
  auto named = lin.named_parameters();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_TRUE(named[0].second.is_same(lin.weight));
  EXPECT_TRUE(named[1].second.is_same(lin.bias));
  EXPECT_TRUE(lin.weight.requires_grad() && lin.weight.is_leaf());
  EXPECT_EQ(lin.weight.shape(), (Shape{2, 3}));
  EXPECT_EQ(lin.weight.dtype(), DType::Float32);

  // Writing through the registered handle is seen by forward.
  Tensor x = randn({5, 3});
  {
    NoGradGuard ng;
    named[0].second.zero_();
    named[1].second.fill_(0.5);
  }
  nash_test::expect_values(lin(x), std::vector<double>(10, 0.5));
}

TEST(Module, TrainAndEvalRecurse) {
  auto b = std::make_shared<Block>();
  auto outer = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{b});
  EXPECT_TRUE(outer->is_training());
  outer->eval();
  EXPECT_FALSE(outer->is_training());
  EXPECT_FALSE(b->is_training());
  EXPECT_FALSE(b->net->is_training());
  EXPECT_FALSE((*b->net)[2]->is_training());
  EXPECT_EQ(b->mode_changes, 1);
  outer->train();
  EXPECT_TRUE((*b->net)[0]->is_training());
  EXPECT_EQ(b->mode_changes, 2);
}

TEST(Module, ZeroGradClearsEveryGradient) {
  Block b;
  Tensor y = sum(b(randn({2, 3})));
  y.backward();
  for (auto& p : b.named_parameters()) EXPECT_TRUE(p.second.grad().defined()) << p.first;
  b.zero_grad();
  for (auto& p : b.named_parameters()) EXPECT_FALSE(p.second.grad().defined()) << p.first;
}

TEST(Module, ToDTypeConvertsInPlaceKeepingIdentity) {
  manual_seed(3);
  Block b;
  Tensor w = b.net->named_parameters()[0].second;
  std::vector<float> before = w.to_vector<float>();
  sum(b(randn({2, 3}))).backward();
  b.to(DType::Float64);
  // Same tensor object: the member, the registry and outside handles all see the converted data.
  EXPECT_TRUE(w.is_same(b.net->named_parameters()[0].second));
  EXPECT_EQ(w.dtype(), DType::Float64);
  EXPECT_TRUE(w.requires_grad() && w.is_leaf());
  EXPECT_EQ(w.grad().dtype(), DType::Float64);
  EXPECT_EQ(b.count.dtype(), DType::Float64);
  EXPECT_EQ(b.scale.dtype(), DType::Float64);
  std::vector<double> after = w.to_vector<double>();
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], static_cast<double>(before[i]));
  // And it still trains: gradients reach the converted leaves.
  b.zero_grad();
  sum(b(randn({2, 3}, DType::Float64))).backward();
  EXPECT_EQ(w.grad().dtype(), DType::Float64);
  b.to(Device::cpu());  // already there: nothing changes
  EXPECT_EQ(w.device(), Device::cpu());
}

TEST(Module, RegistrationErrorsNameTheModule) {
  Block b;
  expect_error([&] { b.register_twice(); }, {"Block.register_parameter", "scale", "already registered"});
  expect_error([] { nn::Sequential().push_back(nullptr); }, {"Sequential.push_back", "null"});
}

#ifndef NASH_WITH_CUDA
TEST(Module, MovingToCudaWithoutBackendFailsClearly) {
  nn::Linear lin(2, 2);
  EXPECT_THROW(lin.to(Device::cuda()), Error);
  EXPECT_EQ(lin.weight.device(), Device::cpu());
}
#endif
