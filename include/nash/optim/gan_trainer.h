// GanTrainer: one training step of a GAN (n_dis D updates, one G update) with separate optimizers and learning
// rates (TTUR), a choice of loss and penalties, and per-step balance diagnostics written to a CSV log.
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nash/core/error.h"
#include "nash/nn/losses.h"
#include "nash/nn/module.h"
#include "nash/optim/optimizer.h"

namespace nash {
namespace optim {

// What a step does when a loss or a gradient norm is NaN or infinite: Stop throws NonFiniteError before the bad
// update is applied when the loss is bad (and right after it when only the gradient is, which the step kernels see);
// Skip drops that player's update (no parameter or optimizer state changes), counts it and goes on.
enum class NonFinitePolicy { Stop, Skip };

// A loss or gradient that became NaN/Inf (Stop policy). The message names the step, the player and the quantity.
class NonFiniteError : public Error {
 public:
  NonFiniteError(const std::string& what, int64_t step, char player) : Error(what), step(step), player(player) {}
  int64_t step;
  char player;  // 'D' or 'G'
};

struct GanTrainerOptions {
  nn::GanLoss loss = nn::GanLoss::NonSaturating;
  int64_t n_dis = 1;         // D updates per G update
  double gp_lambda = 0.0;    // WGAN-GP weight (0: off)
  double r1_gamma = 0.0;     // R1 weight (0: off)
  bool diagnostics = true;   // gradient norms, update norms and ratios (inside the optimizers' step kernels when
                             // they support it, else a snapshot pass before each update and one after)
  // An extra term of D's loss at every D update (e.g. nn::orthonormal_penalty(*D, beta)); counted in
  // StepStats::penalty with the gradient penalty and R1.
  std::function<Tensor()> d_regularizer;
  // Called after every D update that was applied (e.g. nn::clip_weights_(*D, c), the original WGAN's clipping).
  std::function<void()> after_d_update;
  // Applied to every batch D scores, real and generated, in D's and G's updates (the penalties' interpolates and
  // reals too): differentiable augmentation (nn::diff_augment), through which G's gradient flows.
  std::function<Tensor(const Tensor&)> augment;
  NonFinitePolicy on_nonfinite = NonFinitePolicy::Stop;
  // Data-parallel training (nash::dist): called around every backward pass with the player being updated ('D' or
  // 'G'); after_backward must leave that player's gradients averaged over the ranks (dist::GradReducer's prepare()
  // and finish()). reduce_scalar turns a rank's loss into the global batch's (the mean over ranks), so that every
  // rank logs the same values and takes the same non-finite decisions. shard_rank/shard_count: this process trains
  // rows rank, rank + count, ... (dist::Shard) of each global batch of count*n; per-sample draws inside the step
  // (the gradient penalty's eps) are made for the global batch and sliced the same way.
  std::function<void(char player)> before_backward, after_backward;
  std::function<double(double)> reduce_scalar;
  int64_t shard_rank = 0, shard_count = 1;
  std::string log_path;      // CSV of every step's StepStats (empty: no file); per-layer norms of balanced
                             // optimizers go to <log_path>.layers.csv (step, player, group, grad_norm, oracle_norm)
};

// What one step did. Norms are over the parameters a player's optimizer updated (‖·‖₂ of the concatenation); the
// optimizers of the multi-tensor step (SGD, Adam, the balanced ones) compute them inside their update kernel.
struct StepStats {
  int64_t step = 0;
  double d_loss = 0, g_loss = 0, penalty = 0;  // the last D update's loss and penalty; G's loss
  double grad_norm_d = 0, grad_norm_g = 0;     // ‖∇‖ at the last D update and at the G update
  double update_norm_d = 0, update_norm_g = 0; // ‖Y_after - Y_before‖ of the last D update / the G update
  double param_norm_d = 0, param_norm_g = 0;   // ‖Y‖ before the update
  double rel_speed_d = 0, rel_speed_g = 0;     // η‖g‖/‖Y‖ ("relative update speed", Dissecting... Fig. 3a)
  double update_ratio = 0;                     // update_norm_g / update_norm_d: near 1 when the players are balanced
  double grad_ratio = 0;                       // ‖g_G‖/‖g_G⁽⁰⁾‖ + ‖g_D‖/‖g_D⁽⁰⁾‖ (Fig. 1b's convergence measure)
  double seconds = 0;                          // wall time of the step
  int64_t skipped_d = 0, skipped_g = 0;        // updates dropped for a non-finite loss or gradient (Skip policy)
  // Per group (layer) of a balanced optimizer (FusedOptimizer: LREQAdam, NSGDA, Ada-nSGDA, AdaDir): ‖g‖ and the
  // Adam oracle's ‖A‖ (Dissecting... Fig. 2b/c); empty for other optimizers.
  std::vector<double> layer_grad_norms_d, layer_grad_norms_g, layer_oracle_norms_d, layer_oracle_norms_g;
};

class GanTrainer {
 public:
  using Sampler = std::function<Tensor()>;
  GanTrainer(std::shared_ptr<nn::Module> generator, std::shared_ptr<nn::Module> discriminator, Optimizer& opt_g,
             Optimizer& opt_d, GanTrainerOptions options = {});

  // Runs n_dis discriminator updates (each on a fresh real batch and latent batch) and one generator update.
  StepStats step(const Sampler& real_batch, const Sampler& latent_batch);

  // Class-conditional GANs (G and D nn::ConditionalModule): samplers give a batch with its (N) labels, images with
  // their classes and latents with the classes G is asked for. Each D update scores D(x, y) of a real batch and
  // D(G(z, c), c) of a latent batch; the gradient penalty takes its interpolates with the real batch's labels (the
  // pairing is the real image's), R1 the real pairs. The G update scores D(G(z, c), c) of a fresh latent batch.
  struct Labeled {
    Tensor x, y;
  };
  using LabeledSampler = std::function<Labeled()>;
  StepStats step_conditional(const LabeledSampler& real_batch, const LabeledSampler& latent_batch);
  int64_t steps_done() const { return steps_; }
  // Updates dropped so far under NonFinitePolicy::Skip (D and G together).
  int64_t skipped_updates() const { return skipped_; }

  // What a checkpoint needs to continue a run exactly: the step counter, the first gradient norms (grad_ratio's
  // reference) and the skip count.
  struct State {
    int64_t steps = 0;
    double g0 = 0, d0 = 0;
    int64_t skipped = 0;
  };
  State state() const { return {steps_, g0_, d0_, skipped_}; }
  void restore(const State& s);
  const GanTrainerOptions& options() const { return opt_; }

 private:
  // Host copies of a player's parameters before its update (reused every step), for the update norm.
  struct Snapshot {
    std::vector<unsigned char> bytes;  // each parameter's values in its own dtype, back to back
  };
  // One player's update from its loss; returns the loss value. false in *applied when the update was skipped.
  double update(char who, nn::Module& player, Optimizer& opt, Snapshot& snap, const Tensor& loss, double& grad_norm,
                double& update_norm, double& param_norm, bool* applied);
  // The step with the norms the diagnostics want (from the step kernels, or snapshot passes around the step).
  void measure_step(nn::Module& player, Optimizer& opt, Snapshot& snap, double& grad_norm, double& update_norm,
                    double& param_norm);
  [[noreturn]] void fail_nonfinite(char who, const char* what, double value) const;
  // The step of both kinds: y is undefined for unconditional networks.
  using Net = std::function<Tensor(const Tensor& x, const Tensor& y)>;
  StepStats run_step(const LabeledSampler& real_batch, const LabeledSampler& latent_batch, const Net& g, const Net& d);
  void log(const StepStats& s);

  Snapshot snap_g_, snap_d_;
  std::shared_ptr<nn::Module> g_, d_;
  Optimizer &opt_g_, &opt_d_;
  GanTrainerOptions opt_;
  int64_t steps_ = 0;
  double g0_ = 0, d0_ = 0;  // first gradient norms, for grad_ratio
  int64_t skipped_ = 0;
  std::ofstream log_, layer_log_;
};

// ‖·‖₂ over a list of tensors (undefined entries skipped), accumulated in double.
double global_norm(const std::vector<Tensor>& tensors);

}  // namespace optim
}  // namespace nash
