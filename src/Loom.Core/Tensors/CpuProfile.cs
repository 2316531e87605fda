using System.Runtime.Intrinsics.X86;

namespace Loom.Tensors;

/// <summary>
/// The processor the kernels tune for: vendor, family and model, and the per-core data cache sizes, read once
/// from CPUID at run time (virtual machines often hide /sys/devices/system/cpu/*/cache, CPUID they pass through).
/// </summary>
/// <param name="Vendor">CPUID vendor string: "GenuineIntel", "AuthenticAMD", or "unknown" off x86.</param>
/// <param name="Family">Display family (base + extended): 6 on Intel cores, 0x19 Zen 3/4, 0x1A Zen 5.</param>
/// <param name="Model">Display model (extended model · 16 + model).</param>
/// <param name="L1DataBytes">Level-1 data cache of one core, bytes.</param>
/// <param name="L2Bytes">Level-2 cache of one core, bytes.</param>
public sealed record CpuProfile(string Vendor, int Family, int Model, int L1DataBytes, int L2Bytes)
{
    /// <summary>Used when CPUID does not answer: 32 KiB L1 data, 1 MiB L2.</summary>
    const int FallbackL1 = 32 * 1024, FallbackL2 = 1024 * 1024;

    /// <summary>This machine's processor, read once.</summary>
    public static CpuProfile Current { get; } = Detect();

    /// <summary>An AMD Zen core (family 0x17 and later: Zen 1 to Zen 5).</summary>
    public bool IsAmdZen => Vendor == "AuthenticAMD" && Family >= 0x17;

    /// <summary>Reads this machine's processor from CPUID.</summary>
    public static CpuProfile Detect()
    {
        if (!X86Base.IsSupported) return new CpuProfile("unknown", 0, 0, FallbackL1, FallbackL2);
        var (_, vendorB, vendorC, vendorD) = X86Base.CpuId(0, 0);
        string vendor = string.Concat(Ascii(vendorB), Ascii(vendorD), Ascii(vendorC));
        var (signature, _, _, _) = X86Base.CpuId(1, 0);
        int baseFamily = (signature >> 8) & 0xF, baseModel = (signature >> 4) & 0xF;
        int family = baseFamily == 0xF ? baseFamily + ((signature >> 20) & 0xFF) : baseFamily;
        int model = baseFamily is 0x6 or 0xF ? (((signature >> 16) & 0xF) << 4) | baseModel : baseModel;
        int l1 = 0, l2 = 0;
        // Deterministic cache parameters: leaf 4 on Intel, 0x8000001D on AMD (same layout).
        int leaf = vendor == "AuthenticAMD" ? unchecked((int)0x8000001D) : 4;
        if (MaximumLeaf(leaf) >= leaf)
            for (int index = 0; index < 8; index++)
            {
                var (eax, ebx, _, ecx) = X86Base.CpuId(leaf, index);
                int type = eax & 0x1F, level = (eax >> 5) & 0x7;
                if (type == 0) break;
                long size = (long)(((ebx >> 22) & 0x3FF) + 1) * (((ebx >> 12) & 0x3FF) + 1) * ((ebx & 0xFFF) + 1) * ((long)(uint)ecx + 1);
                if (level == 1 && type == 1) l1 = (int)Math.Min(size, int.MaxValue);
                if (level == 2 && type is 2 or 3) l2 = (int)Math.Min(size, int.MaxValue);
            }
        // Legacy extended leaves (AMD, and hypervisors that hide 0x8000001D): L1d KiB in 0x80000005 ECX[31:24],
        // L2 KiB in 0x80000006 ECX[31:16] (Intel fills the latter too).
        if (l1 == 0 && vendor == "AuthenticAMD" && MaximumLeaf(unchecked((int)0x80000005)) >= unchecked((int)0x80000005))
            l1 = (int)(((uint)X86Base.CpuId(unchecked((int)0x80000005), 0).Ecx >> 24) * 1024);
        if (l2 == 0 && MaximumLeaf(unchecked((int)0x80000006)) >= unchecked((int)0x80000006))
            l2 = (int)(((uint)X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx >> 16) * 1024);
        return new CpuProfile(vendor, family, model, l1 > 0 ? l1 : FallbackL1, l2 > 0 ? l2 : FallbackL2);
    }

    /// <summary>One line for benchmark headers: "AuthenticAMD family 0x1A model 0x02, L1d 48 KiB, L2 1024 KiB".</summary>
    public override string ToString() =>
        $"{Vendor} family 0x{Family:X2} model 0x{Model:X2}, L1d {L1DataBytes / 1024} KiB, L2 {L2Bytes / 1024} KiB";

    /// <summary>The highest leaf of the range (basic or extended) that <paramref name="leaf"/> belongs to.</summary>
    static int MaximumLeaf(int leaf) => X86Base.CpuId(leaf < 0 ? unchecked((int)0x80000000) : 0, 0).Eax;

    static string Ascii(int value) => string.Create(4, value, (span, v) =>
    {
        for (int i = 0; i < 4; i++) span[i] = (char)((v >> (8 * i)) & 0xFF);
    });
}
