"""CPU facts: model names and ISA features from cpuinfo / sysctl texts of three kinds of CPU."""

import json

import pytest

from quantbench.machine import cpu

# Invented cpuinfo excerpts in the shape Linux writes them (two logical CPUs each).
EPYC_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
    "nonstop_tsc cpuid extd_apicid aperfmperf pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 "
    "sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic "
    "cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core "
    "bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall "
    "fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap "
    "avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 "
    "xsaves cqm_llc cqm_occup_llc avx512_bf16 clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin "
    "arat npt lbrv svm_lock nrip_save avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes "
    "vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq la57 rdpid overflow_recov succor smca"
)
XEON_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi "
    "mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon "
    "pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq "
    "dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 "
    "x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch "
    "cpuid_fault epb cat_l3 cat_l2 cdp_l3 invpcid_single intel_ppin cdp_l2 ssbd mba ibrs ibpb "
    "stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 hle "
    "avx2 smep bmi2 erms invpcid rtm cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma "
    "clflushopt clwb intel_pt avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves "
    "cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect avx_vnni avx512_bf16 "
    "wbnoinvd dtherm ida arat pln pts hfi vnmi avx512vbmi umip pku ospke waitpkg avx512_vbmi2 "
    "gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid "
    "bus_lock_detect cldemote movdiri movdir64b enqcmd fsrm md_clear serialize tsxldtrk pconfig "
    "arch_lbr ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities"
)
GRAVITON_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma "
    "lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg "
    "dcpodp svei8mm svebf16 i8mm bf16 dgh rng"
)


def x86_block(index: int, vendor: str, model: str, flags: str) -> str:
    return (
        f"processor\t: {index}\nvendor_id\t: {vendor}\ncpu family\t: 25\nmodel\t\t: 17\n"
        f"model name\t: {model}\nstepping\t: 1\ncpu MHz\t\t: 2400.000\n"
        f"cache size\t: 1024 KB\nflags\t\t: {flags}\nbogomips\t: 4800.00\n\n"
    )


def arm_block(index: int) -> str:
    return (
        f"processor\t: {index}\nBogoMIPS\t: 2100.00\nFeatures\t: {GRAVITON_FEATURES}\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
        "CPU part\t: 0xd40\nCPU revision\t: 1\n\n"
    )


EPYC_MODEL = "AMD EPYC 9654 96-Core Processor"
XEON_MODEL = "Intel(R) Xeon(R) Platinum 8480+"
EPYC = "".join(x86_block(i, "AuthenticAMD", EPYC_MODEL, EPYC_FLAGS) for i in range(2))
XEON = "".join(x86_block(i, "GenuineIntel", XEON_MODEL, XEON_FLAGS) for i in range(2))
GRAVITON = "".join(arm_block(i) for i in range(2))

APPLE_SYSCTL = """\
machdep.cpu.brand_string: Apple M2
hw.logicalcpu: 8
hw.optional.AdvSIMD: 1
hw.optional.arm.FEAT_DotProd: 1
hw.optional.arm.FEAT_I8MM: 0
hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_FP16: 1
hw.optional.arm.FEAT_SME: 0
"""


def test_epyc_has_avx512_and_vnni_but_no_amx():
    info = cpu.parse_cpuinfo(EPYC)
    assert info["model"] == EPYC_MODEL
    assert info["vendor"] == "AuthenticAMD" and info["logical_cpus"] == 2
    feats = cpu.features(info["flags"])
    assert {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"} <= set(feats)
    assert not {"avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "neon"} & set(feats)


def test_sapphire_rapids_has_amx_and_both_vnni():
    feats = cpu.features(cpu.parse_cpuinfo(XEON)["flags"])
    assert {"avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "avx512_fp16"} <= set(
        feats
    )
    assert "amx_fp16" not in feats and "sve" not in feats


def test_graviton_model_from_part_number_and_arm_features():
    info = cpu.parse_cpuinfo(GRAVITON)
    assert info["model"] == "ARM Neoverse-V1"
    assert info["vendor"] == "ARM" and info["logical_cpus"] == 2
    feats = cpu.features(info["flags"])
    assert feats == ["neon", "fp16", "dotprod", "i8mm", "bf16", "sve"]


def test_unknown_arm_part_is_named_by_its_numbers():
    text = GRAVITON.replace("0xd40", "0xabc")
    assert cpu.parse_cpuinfo(text)["model"] == "ARM implementer 0x41 part 0xabc"


def test_features_keep_the_table_order_and_ignore_unknown_flags():
    assert cpu.features(["amx_tile", "avx2", "made_up"]) == ["avx2", "amx_tile"]
    assert cpu.features([]) == []


def test_sysctl_lists_only_features_set_to_one():
    info = cpu.parse_sysctl(APPLE_SYSCTL)
    assert info["model"] == "Apple M2" and info["logical_cpus"] == 8
    assert cpu.features(info["flags"]) == ["neon", "fp16", "dotprod", "bf16"]


def test_sysctl_of_an_intel_mac_reads_the_feature_lists():
    text = (
        "machdep.cpu.brand_string: Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz\n"
        "machdep.cpu.features: FPU VME SSE SSE2 FMA F16C\n"
        "machdep.cpu.leaf7_features: SMEP BMI1 AVX2 BMI2 ERMS\n"
    )
    assert cpu.features(cpu.parse_sysctl(text)["flags"]) == ["avx2", "fma", "f16c"]


@pytest.mark.parametrize("text", [EPYC, XEON, GRAVITON])
def test_cpu_facts_read_a_cpuinfo_file(tmp_path, monkeypatch, text):
    monkeypatch.delenv(cpu.CPUID_MASK_ENV, raising=False)
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    facts = cpu.cpu_facts(path)
    assert facts["model"] == cpu.parse_cpuinfo(text)["model"]
    assert facts["features"] == cpu.features(cpu.parse_cpuinfo(text)["flags"])
    assert facts["source"] == str(path) and facts["logical_cpus"] == 2
    assert facts["torch_capability"] == cpu.torch_capability()
    json.dumps(facts)  # plain JSON types only


def test_without_cpuinfo_or_sysctl_the_facts_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Linux")
    facts = cpu.cpu_facts(tmp_path / "missing")
    assert facts["source"] == "none" and facts["features"] == []
    assert facts["model"]  # falls back to what platform knows


def test_describe_is_one_line_with_the_features():
    facts = {
        "model": "X",
        "architecture": "x86_64",
        "features": ["avx2"],
        "torch_capability": "AVX2",
    }
    assert cpu.describe(facts) == "X (x86_64; avx2; torch AVX2)"


def test_under_a_cpuid_mask_the_facts_leave_out_what_it_hid(tmp_path, monkeypatch):
    """benchmarks/avx2_only.py hides AVX-512, AVX-VNNI and AMX from CPUID; the facts of such a
    process list what its libraries saw and name the mask."""
    path = tmp_path / "cpuinfo"
    path.write_text(XEON)
    monkeypatch.delenv(cpu.CPUID_MASK_ENV, raising=False)
    plain = cpu.cpu_facts(path)
    assert "cpuid_mask" not in plain and {"avx512f", "avx_vnni", "amx_int8"} <= set(
        plain["features"]
    )
    monkeypatch.setenv(cpu.CPUID_MASK_ENV, "avx2")
    masked = cpu.cpu_facts(path)
    assert masked["cpuid_mask"] == "avx2"
    assert masked["features"] == ["avx2", "fma", "f16c"]
    assert cpu.describe(masked).endswith("; CPUID masked to avx2)")
