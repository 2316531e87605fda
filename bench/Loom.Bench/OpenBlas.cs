using System.Runtime.InteropServices;

namespace Loom.Bench;

/// <summary>
/// cblas_sgemm from the system's OpenBLAS (Debian: libopenblas0-pthread), loaded at run time so the
/// benchmark still runs, without the peer, where it is not installed.
/// </summary>
internal sealed unsafe class OpenBlas
{
    const int RowMajor = 101, NoTrans = 111, Trans = 112;

    readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    readonly delegate* unmanaged<int, void> setNumThreads;
    readonly delegate* unmanaged<byte*> getCoreName;

    OpenBlas(nint library)
    {
        sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)
            NativeLibrary.GetExport(library, "cblas_sgemm");
        setNumThreads = (delegate* unmanaged<int, void>)NativeLibrary.GetExport(library, "openblas_set_num_threads");
        getCoreName = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(library, "openblas_get_corename");
    }

    /// <summary>Loads libopenblas.so.0, or returns null with the reason.</summary>
    public static OpenBlas? TryLoad(out string note)
    {
        foreach (var name in new[] { "libopenblas.so.0", "libopenblas.so" })
            if (NativeLibrary.TryLoad(name, out var handle))
            {
                note = $"loaded {name}";
                return new OpenBlas(handle);
            }
        note = "OpenBLAS not found (install: apt-get update && apt-get install -y libopenblas0-pthread); reporting Loom and peak only";
        return null;
    }

    public string CoreName => Marshal.PtrToStringUTF8((nint)getCoreName()) ?? "?";

    public void SetThreads(int threads) => setNumThreads(threads);

    /// <summary>Same contract as Gemm.Multiply: row-major C[m, n] = op(A)[m, k] · op(B)[k, n] (+ C when accumulate).</summary>
    public void Multiply(float* a, float* b, int m, int k, int n, float* c, bool transposeA, bool transposeB, bool accumulate)
    {
        sgemm(RowMajor, transposeA ? Trans : NoTrans, transposeB ? Trans : NoTrans, m, n, k,
            1f, a, transposeA ? m : k, b, transposeB ? k : n, accumulate ? 1f : 0f, c, n);
    }
}
