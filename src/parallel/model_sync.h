// Keeping the ranks' models identical: the same architecture everywhere, rank 0's initial values
// broadcast, and a final check that training left every rank with the same parameters.
#pragma once

#include <torch/nn/module.h>

namespace recur::parallel {

class Communicator;

// Every rank compares a fingerprint of its parameter names and shapes with everyone else's; a
// mismatch (different configs on different ranks) is an error on every rank, not a hang.
void check_same_model(torch::nn::Module& module, Communicator& comm);
void broadcast_module(torch::nn::Module& module, Communicator& comm, int root);
bool ranks_hold_same_parameters(torch::nn::Module& module, Communicator& comm);

}  // namespace recur::parallel
