using Loom.Tensors;

namespace Loom.Tests.Tensors;

public class GemmBlockingTests
{
    static CpuProfile Zen(int l1, int l2) => new("AuthenticAMD", 0x1A, 0x02, l1, l2);

    [Fact]
    public void IntelAndUnknownProcessorsKeepTheIntelBlocking()
    {
        foreach (var cpu in new[] { new CpuProfile("GenuineIntel", 6, 0x8F, 48 * 1024, 2048 * 1024), new CpuProfile("unknown", 0, 0, 32 * 1024, 1024 * 1024),
                     new CpuProfile("AuthenticAMD", 0x15, 0x02, 16 * 1024, 2048 * 1024) })
            Assert.Same(GemmBlocking.Intel, GemmBlocking.For(cpu, 14, 32));
        Assert.Equal(new GemmBlocking(256, 256, 512, 1024), GemmBlocking.Intel);
    }

    [Fact]
    public void Zen5SizesFollowItsCaches()
    {
        // 48 KiB L1 data, 1 MiB L2: the 14-row A panel (14·kc·4 B) in half of L1, A block + B slice within 3/4 of L2.
        var blocking = GemmBlocking.For(Zen(48 * 1024, 1024 * 1024), 14, 32);
        Assert.Equal(new GemmBlocking(384, 168, 320, 1024), blocking);
        // The 6x16 Vector256 tile: kc at its 512 ceiling, mc 126 (whole 6-row tiles), nc 256.
        Assert.Equal(new GemmBlocking(512, 126, 256, 1024), GemmBlocking.For(Zen(48 * 1024, 1024 * 1024), 6, 16));
    }

    [Theory]
    [InlineData(16, 256)]
    [InlineData(32, 512)]
    [InlineData(32, 1024)]
    [InlineData(48, 1024)]
    [InlineData(64, 4096)]
    [InlineData(80, 2048)]
    public void ZenBlockingIsValidForAnyCacheSizes(int l1KiB, int l2KiB)
    {
        foreach (var (tileRows, tileCols) in new[] { (14, 32), (6, 16) })
        {
            var cpu = Zen(l1KiB * 1024, l2KiB * 1024);
            var b = GemmBlocking.For(cpu, tileRows, tileCols).Validate();
            string what = $"{cpu} tile {tileRows}x{tileCols}: {b}";
            Assert.True(b.BlockK % 64 == 0 && b.BlockK is >= 128 and <= 512, what);
            Assert.True(b.BlockRows % tileRows == 0 && b.BlockRows >= tileRows, what);
            Assert.True(b.BlockCols % tileCols == 0 && b.BlockCols >= tileCols, what);
            Assert.True(b.SplitCols % tileCols == 0 && b.SplitCols >= b.BlockCols, what);
            // The A panel fits in L1 once kc is not at its floor; the A block and B slice fit in L2 unless at their floors.
            if (b.BlockK > 128) Assert.True(tileRows * b.BlockK * 4 <= cpu.L1DataBytes / 2, what);
            if (b.BlockRows > 64 && b.BlockCols > 128) Assert.True((b.BlockRows + b.BlockCols) * b.BlockK * 4 <= cpu.L2Bytes, what);
        }
    }

    [Fact]
    public void BadSizesAreRejectedNamingTheField()
    {
        var ex = Assert.Throws<ArgumentException>(() => new GemmBlocking(0, 256, 512, 1024).Validate());
        Assert.Equal("GemmBlocking.BlockK must be positive", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => new GemmBlocking(256, 256, 512, -1).Validate());
        Assert.Equal("GemmBlocking.SplitCols must be positive", ex.Message);
    }

    [Fact]
    public void ThisMachinesProfileIsReadFromCpuid()
    {
        var cpu = CpuProfile.Detect();
        Assert.Equal(cpu, CpuProfile.Current);
        Assert.True(cpu.L1DataBytes >= 8 * 1024 && cpu.L2Bytes >= 64 * 1024, cpu.ToString());
        if (System.Runtime.Intrinsics.X86.X86Base.IsSupported)
        {
            Assert.Contains(cpu.Vendor, new[] { "GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "  Shanghai  " });
            Assert.True(cpu.Family > 0, cpu.ToString());
            // /proc/cpuinfo says the same family and model as CPUID.
            if (File.Exists("/proc/cpuinfo"))
            {
                var lines = File.ReadLines("/proc/cpuinfo").TakeWhile(l => l.Length > 0).ToArray();
                string Field(string name) => lines.First(l => l.StartsWith(name, StringComparison.Ordinal)).Split(':')[1].Trim();
                Assert.Equal(int.Parse(Field("cpu family\t")), cpu.Family);
                Assert.Equal(int.Parse(Field("model\t")), cpu.Model);
                Assert.Equal(Field("vendor_id"), cpu.Vendor);
            }
        }
    }
}
