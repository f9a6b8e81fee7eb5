// AdaDir: the reverse graft of Ada-nSGDA (the gradient's norm on Adam's direction), kept for the paper's ablation.
#include "kernels/optim_step.h"
#include "nash/optim/balanced.h"

namespace nash {
namespace optim {

AdaDir::AdaDir(std::vector<ParamGroup> groups, AdaGraftOptions opt)
    : AdamGraft(std::move(groups), opt, "AdaDir", detail::StepRule::AdaDir) {}

}  // namespace optim
}  // namespace nash
