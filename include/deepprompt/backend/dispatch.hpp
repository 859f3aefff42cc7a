#pragma once
// The device-dispatched front end of the backends. Every kernel of backend/cpu is also offered
// under the device tag: f(Cpu{}, args...) forwards to cpu::f(args...) (the forwarding sits at the
// end of each kernel header), and backend/cuda/kernels.cuh gives f(Cuda{}, args...) with the
// same arguments for CUDA translation units. An op written for Var<T, R, D> calls f(D{}, ...)
// unqualified; argument-dependent lookup picks the device's kernel when the op is instantiated,
// so CPU code never sees a CUDA header. This header gathers the CPU side.
#include "cpu/elementwise.hpp"
#include "cpu/gemm.hpp"
#include "cpu/philox.hpp"
#include "cpu/rowwise.hpp"
