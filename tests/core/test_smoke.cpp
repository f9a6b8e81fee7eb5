#include <gtest/gtest.h>

#include "nash/nash.h"

TEST(Smoke, AddBackward) {
  nash::Tensor a = nash::from_vector(std::vector<float>{1, 2, 3}, {3}).requires_grad_();
  nash::Tensor b = nash::from_vector(std::vector<float>{4, 5, 6}, {3}).requires_grad_();
  nash::Tensor y = nash::sum(a * b);
  y.backward();
  EXPECT_FLOAT_EQ(y.item(), 32);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{4, 5, 6}));
}
