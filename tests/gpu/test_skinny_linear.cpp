// The decode-step projection kernel (core/cuda/skinny_linear.cu) against a float64 product on
// the CPU: 1..32 rows, bf16 and f16, k that is no multiple of a warp step's slices, n that is no
// multiple of a unit's 16 rows, with and without bias and residual, strided x, residual and
// output rows. Each case runs twice (bit-identical results required) and the relative error of
// the output must stay under the dtype's rounding bound.
//
//   test_skinny_linear            the checks (ctest -L gpu)
//   test_skinny_linear --bench    plus cuBLAS (torch::mm / addmm) against this kernel at the
//                                 Llama-2-7B decode shapes, median of 50, GB/s of weights read
#include "core/cuda/skinny_linear.h"
#include "gpu_check.h"

#include <ATen/cuda/CUDAContext.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace mlawb;

namespace {

cuda::DType dtype_of(torch::ScalarType t) { return t == torch::kFloat16 ? cuda::DType::F16 : cuda::DType::BF16; }

// out = x W^T (+ bias) (+ residual) by the kernel, into `out` (a view whose rows may be strided).
void run_kernel(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias, const torch::Tensor& residual,
                torch::Tensor& out) {
    cuda::SkinnyLinearArgs a;
    a.dtype = dtype_of(x.scalar_type());
    a.rows = static_cast<int>(x.size(0));
    a.n = static_cast<int>(w.size(0));
    a.k = static_cast<int>(w.size(1));
    a.x = x.data_ptr();
    a.x_stride = x.stride(0);
    a.w = w.data_ptr();
    a.bias = bias.defined() ? bias.data_ptr() : nullptr;
    a.residual = residual.defined() ? residual.data_ptr() : nullptr;
    a.residual_stride = residual.defined() ? residual.stride(0) : 0;
    a.out = out.data_ptr();
    a.out_stride = out.stride(0);
    const char* e = cuda::launch_skinny_linear(a, at::cuda::getCurrentCUDAStream().stream());
    MLAWB_CHECK(e == nullptr, std::string("launch: ") + (e ? e : ""));
}

void check_case(int rows, int n, int k, torch::ScalarType dt, bool with_bias, bool with_residual, bool strided) {
    const std::string label = std::to_string(rows) + " x " + std::to_string(k) + " -> " + std::to_string(n) +
                              (dt == torch::kFloat16 ? " f16" : " bf16") + (with_bias ? " +bias" : "") +
                              (with_residual ? " +residual" : "") + (strided ? " strided" : "");
    torch::manual_seed(rows * 1000003 + n * 31 + k);
    auto opts = torch::TensorOptions().dtype(dt).device(torch::kCUDA);
    // Strided rows: views into wider buffers (row stride > width), as the decode step's are.
    torch::Tensor x_buf = torch::randn({rows, k + (strided ? 64 : 0)}, opts);
    torch::Tensor x = x_buf.narrow(1, 0, k);
    torch::Tensor w = (torch::randn({n, k}, opts) * (1.0 / std::sqrt(static_cast<double>(k)))).to(dt);
    torch::Tensor bias = with_bias ? torch::randn({n}, opts) : torch::Tensor();
    torch::Tensor res = with_residual ? torch::randn({rows, n + (strided ? 8 : 0)}, opts).narrow(1, 0, n) : torch::Tensor();
    torch::Tensor ref = torch::mm(x.to(torch::kCPU, torch::kFloat64), w.to(torch::kCPU, torch::kFloat64).t());
    if (with_bias) ref = ref + bias.to(torch::kCPU, torch::kFloat64);
    if (with_residual) ref = ref + res.to(torch::kCPU, torch::kFloat64);
    std::vector<torch::Tensor> outs;
    for (int rep = 0; rep < 2; ++rep) {
        torch::Tensor out_buf = torch::full({rows, n + (strided ? 24 : 0)}, std::nan(""), opts);
        torch::Tensor out = out_buf.narrow(1, 0, n);
        run_kernel(x, w, bias, res, out);
        torch::cuda::synchronize();
        outs.push_back(out.to(torch::kCPU, torch::kFloat64));
    }
    MLAWB_CHECK(torch::equal(outs[0], outs[1]), label + ": two runs differ");
    const bool finite = torch::isfinite(outs[0]).all().item<bool>();
    const double rel = ((outs[0] - ref).norm() / ref.norm()).item<double>();
    const double bound = dt == torch::kFloat16 ? 2e-3 : 1e-2;  // one rounding of the output dominates
    std::printf("  %-44s rel err %.2e (bound %.0e)\n", label.c_str(), rel, bound);
    MLAWB_CHECK(finite, label + ": non-finite output (an element not written?)");
    MLAWB_CHECK(rel < bound, label + ": relative error " + std::to_string(rel));
}

double median_us(const std::function<void()>& f) {
    std::vector<float> ms;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    auto stream = at::cuda::getCurrentCUDAStream().stream();
    for (int it = 0; it < 60; ++it) {
        cudaEventRecord(e0, stream);
        f();
        cudaEventRecord(e1, stream);
        cudaEventSynchronize(e1);
        float t = 0;
        cudaEventElapsedTime(&t, e0, e1);
        if (it >= 10) ms.push_back(t);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] * 1e3;
}

void bench() {
    struct Shape {
        const char* name;
        int n, k;
        bool residual;  // the step adds the residual in the product's epilogue
    };
    // Llama-2-7B decode projections (MLA d_kv 64: q | k_rope | c_kv fused is 4096 + 512 + 2048).
    const Shape shapes[] = {{"q|k|v (MHA)", 3 * 4096, 4096, false}, {"q|k_rope|c_kv (MLA 64)", 6656, 4096, false},
                            {"o_proj", 4096, 4096, true},          {"gate|up", 2 * 11008, 4096, false},
                            {"down", 4096, 11008, true},           {"lm_head", 32000, 4096, false}};
    std::printf("\nbf16, median of 50, weights read once (4 rotating weight copies, 2 of them larger than L2):\n");
    std::printf("%-24s %5s %12s %9s %12s %9s %7s\n", "shape", "rows", "cuBLAS us", "GB/s", "skinny us", "GB/s", "ratio");
    auto opts = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
    for (const Shape& s : shapes)
        for (int rows : {1, 8, 32}) {
            std::vector<torch::Tensor> ws;
            for (int i = 0; i < 4; ++i) ws.push_back(torch::randn({s.n, s.k}, opts));
            torch::Tensor x = torch::randn({rows, s.k}, opts), res = torch::randn({rows, s.n}, opts);
            torch::Tensor out = torch::empty({rows, s.n}, opts);
            int i = 0;
            const double cublas = median_us([&] {
                out = s.residual ? torch::addmm(res, x, ws[i++ % 4].t()) : torch::mm(x, ws[i++ % 4].t());
            });
            const double ours =
                median_us([&] { run_kernel(x, ws[i++ % 4], torch::Tensor(), s.residual ? res : torch::Tensor(), out); });
            const double bytes = 2.0 * s.n * s.k;
            std::printf("%-24s %5d %12.1f %9.0f %12.1f %9.0f %6.2fx\n", s.name, rows, cublas, bytes / cublas / 1e3, ours,
                        bytes / ours / 1e3, cublas / ours);
        }
}

}  // namespace

int main(int argc, char** argv) {
    if (!torch::cuda::is_available()) {
        std::printf("FAIL: no CUDA device (this test is labelled gpu)\n");
        return 1;
    }
    for (torch::ScalarType dt : {torch::kBFloat16, torch::kFloat16})
        for (int rows : {1, 3, 8, 13, 32}) {
            check_case(rows, 4096, 4096, dt, false, false, false);
            check_case(rows, 1001, 1000, dt, true, true, true);  // k: 3 full chunks + 232; n: 250 blocks + 1 row
        }
    check_case(5, 37, 8, torch::kBFloat16, true, false, true);   // k a single lane's 8 elements
    check_case(2, 4096, 11008, torch::kBFloat16, false, true, false);  // down_proj's k
    // Rejected shapes name why.
    cuda::SkinnyLinearArgs bad;
    bad.dtype = cuda::DType::BF16;
    bad.rows = 33;
    MLAWB_CHECK(cuda::skinny_linear_unsupported(bad) != nullptr, "33 rows must be refused");
    bad.rows = 2;
    bad.n = 4;
    bad.k = 12;
    MLAWB_CHECK(cuda::skinny_linear_unsupported(bad) != nullptr, "k not a multiple of 8 must be refused");
    bad.dtype = cuda::DType::F32;
    MLAWB_CHECK(cuda::skinny_linear_unsupported(bad) != nullptr, "f32 must be refused");
    if (argc > 1 && std::string(argv[1]) == "--bench") bench();
    return test::finish("test_skinny_linear");
}
