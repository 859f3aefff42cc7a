#pragma once
// All nn/ layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, activations by name,
// FeedForward, multi-head attention (with key/value prefix); and module.hpp's machinery.
#include "activation.hpp"
#include "attention.hpp"
#include "dropout.hpp"
#include "embedding.hpp"
#include "feed_forward.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "norm.hpp"
