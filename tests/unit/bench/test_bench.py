"""The bench's pure helpers: percentiles, ratios, goals, the workload, the tables.

Nothing here is timed; the figures are made up so every expected value is known.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tts_service.bench.cpu import CpuSample, foreign_share
from tts_service.bench.errors import BenchError
from tts_service.bench.goals import Goal
from tts_service.bench.report import (
    GOAL_FIRST_AUDIO,
    GOAL_SHORT_P95,
    GOAL_THROUGHPUT,
    BenchReport,
    render,
)
from tts_service.bench.results import TargetResult
from tts_service.bench.rounds import Sample, rotation, round_ratios, throughput
from tts_service.bench.servers import ServerConfig, serve_command
from tts_service.bench.stats import percentile, ratio
from tts_service.bench.streams import (
    Cell,
    Stream,
    SweepReport,
    parse_counts,
    render_sweep,
    sweep_workload,
)
from tts_service.bench.table import format_ratio, format_table
from tts_service.bench.targets import parse_targets
from tts_service.bench.texts import make_sentences
from tts_service.bench.words import WordCost, measure_word_cost
from tts_service.bench.workload import build_workload
from tts_service.voices.loaded import VoiceFiles
from voicegen import write_tiny_voice

SENTENCE_END = re.compile(r"[.?!](?:\s|$)")


def sentence_count(text: str) -> int:
    return len(SENTENCE_END.findall(text))


# ------------------------------------------------------------------ percentiles and ratios


def test_percentile_is_nearest_rank_on_a_real_sample() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0


def test_percentile_ignores_input_order_and_handles_few_samples() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([7.5], 0.95) == 7.5
    # With two samples p95 is the larger one: one slow request is never averaged away.
    assert percentile([0.2, 14.0], 0.95) == 14.0


@pytest.mark.parametrize("q", [-0.1, 1.01])
def test_percentile_rejects_q_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_ratio_and_its_missing_cases() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_throughput_pools_rounds_and_round_ratios_pair_them() -> None:
    serial = [Sample(10.0, 100.0, None), Sample(10.0, 120.0, None)]
    fair = [Sample(10.0, 110.0, None), Sample(8.0, 120.0, None)]
    assert throughput(serial) == pytest.approx(11.0)  # 220 audio s / 20 wall s
    assert throughput(fair) == pytest.approx(230.0 / 18.0)
    assert round_ratios(fair, serial) == pytest.approx([1.1, 15.0 / 12.0])
    assert throughput([]) is None


def test_rotation_changes_who_goes_first() -> None:
    names = ["serial", "fifo", "fair"]
    assert rotation(names, 0) == names
    assert rotation(names, 1) == ["fifo", "fair", "serial"]
    assert rotation(names, 5) == ["fair", "serial", "fifo"]
    assert rotation([], 3) == []


def test_foreign_share_is_other_processes_share_of_all_cores() -> None:
    start = CpuSample(wall=100.0, machine_busy=50.0, own=10.0)
    # 10 s on 2 cores; the machine used 12 CPU-s, we used 7: others used 5 of 20.
    end = CpuSample(wall=110.0, machine_busy=62.0, own=17.0)
    assert foreign_share(start, end, cores=2) == pytest.approx(0.25)
    # Clock-tick rounding can make it slightly negative: clamp, never report < 0.
    assert foreign_share(start, CpuSample(110.0, 55.0, 17.0), cores=2) == 0.0
    assert foreign_share(CpuSample(100.0, None, 0.0), end, cores=2) is None


# ------------------------------------------------------------------ goals


def test_goal_verdicts_at_and_around_the_limit() -> None:
    at_most = Goal("<=", 1.5)
    assert at_most.verdict(1.5) == "PASS"
    assert at_most.verdict(1.51) == "MISS"
    at_least = Goal(">=", 1.0, aim=1.1)
    assert at_least.verdict(1.0) == "PASS"
    assert at_least.verdict(0.99) == "MISS"
    assert at_least.verdict(None) == "n/a"


def test_goal_descriptions() -> None:
    assert GOAL_THROUGHPUT.describe() == ">= 1.00x (aim 1.10x)"
    assert GOAL_SHORT_P95.describe() == "<= 0.050x"
    assert GOAL_FIRST_AUDIO.describe() == "<= 1.50x"


def test_goal_rejects_an_unknown_operator() -> None:
    with pytest.raises(ValueError, match="operator"):
        Goal("<", 1.0)


def test_format_ratio_keeps_small_ratios_readable() -> None:
    assert format_ratio(1.234) == "1.23x"
    assert format_ratio(0.0456) == "0.046x"
    assert format_ratio(None) == "-"


# ------------------------------------------------------------------ targets


def test_targets_default_to_every_policy_at_the_default_size() -> None:
    targets = parse_targets(None, quick=False, workers=2, threads=1)
    assert [(t.name, t.policy, t.workers, t.threads_per_worker) for t in targets] == [
        ("fifo", "fifo", 2, 1),
        ("fair", "fair", 2, 1),
        ("round_robin", "round_robin", 2, 1),
    ]
    assert [t.name for t in parse_targets(None, quick=True, workers=2, threads=1)] == [
        "fifo",
        "fair",
    ]


def test_a_target_may_have_its_own_size() -> None:
    targets = parse_targets("fair, fair@1x2,fair@2x2,fair", quick=False, workers=2, threads=1)
    assert [(t.name, t.policy, t.workers, t.threads_per_worker) for t in targets] == [
        ("fair", "fair", 2, 1),
        ("fair@1x2", "fair", 1, 2),
        ("fair@2x2", "fair", 2, 2),
    ]


def test_a_target_may_batch() -> None:
    targets = parse_targets("fair,fair+b4,fair@1x2+b8", quick=False, workers=2, threads=1)
    assert [(t.name, t.workers, t.threads_per_worker, t.batch_size) for t in targets] == [
        ("fair", 2, 1, 1),
        ("fair+b4", 2, 1, 4),
        ("fair@1x2+b8", 1, 2, 8),
    ]


def test_a_batching_target_is_compared_with_itself_unbatched() -> None:
    report = make_report()
    report.policies["fair+b4"] = TargetResult("fair+b4", rounds=[Sample(18.0, 99.0, 0.1)])
    assert report.batching_ratio("fair+b4") == pytest.approx(0.5)
    assert report.batching_ratio("fair") is None and report.batching_ratio("fifo+b2") is None
    row = next(line for line in render(report).splitlines() if "ratio to unbatched" in line)
    assert row.split()[-1] == "0.50x"
    assert report.to_dict()["policies"]["fair+b4"]["throughput_ratio_to_unbatched"] == 0.5


def test_a_target_may_name_its_device() -> None:
    targets = parse_targets(
        "fair,fair:cpu,fair:cuda,fair:cuda+b8,round_robin:auto@1x2+b4",
        quick=False,
        workers=2,
        threads=1,
    )
    assert [(t.name, t.device, t.workers, t.threads_per_worker, t.batch_size) for t in targets] == [
        ("fair", "cpu", 2, 1, 1),  # no device: the CPU, as before
        ("fair:cpu", "cpu", 2, 1, 1),
        ("fair:cuda", "cuda", 2, 1, 1),
        ("fair:cuda+b8", "cuda", 2, 1, 8),
        ("round_robin:auto@1x2+b4", "auto", 1, 2, 4),
    ]
    assert targets[4].policy == "round_robin"


@pytest.mark.parametrize(
    "spec",
    [
        "lifo",
        "fair@2",
        "fair@0x1",
        "fair@2x2x2",
        "",
        "fair+b0",
        "fair+b65",
        "fair+4",
        "fair:gpu",
        "fair:",
        ":cuda",
        "fair+b4:cuda",  # the device comes right after the policy
        "fair@1x2:cuda",
        "fair:cuda:cpu",
    ],
)
def test_bad_targets_are_refused(spec: str) -> None:
    with pytest.raises(BenchError):
        parse_targets(spec or ",", quick=False, workers=2, threads=1)


def test_an_unknown_device_is_named_in_the_error() -> None:
    with pytest.raises(BenchError, match="cpu, cuda, auto"):
        parse_targets("fair:gpu", quick=False, workers=2, threads=1)


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_a_device_target_starts_its_server_with_that_device_and_batch() -> None:
    config = ServerConfig("en_US-test", [Path("/voices")], Path("/logs"))
    (target,) = parse_targets("fair:cuda@4x1+b8", quick=False, workers=2, threads=1)
    command = serve_command(config, target, 4321)
    assert command[1:4] == ["-m", "tts_service", "serve"]
    assert flag(command, "--device") == "cuda"
    assert flag(command, "--batch-size") == "8"
    assert (flag(command, "--workers"), flag(command, "--threads-per-worker")) == ("4", "1")
    assert (flag(command, "--policy"), flag(command, "--port")) == ("fair", "4321")
    assert flag(command, "--request-timeout") == "3600"  # the main bench admits everything
    (plain,) = parse_targets("fifo", quick=False, workers=2, threads=1)
    assert flag(serve_command(config, plain, 1), "--device") == "cpu"
    # The sweep leaves admission to the server's own limits.
    own = serve_command(ServerConfig("v", [], Path("/logs"), admission=()), target, 1)
    assert "--request-timeout" not in own and "--max-queued-requests" not in own
    assert config.log_path(target) == Path("/logs/server-fair-cuda@4x1+b8.log")


# ------------------------------------------------------------------ workload


def test_sentences_are_deterministic_varied_and_end_like_sentences() -> None:
    first = make_sentences(30, seed=3)
    assert first == make_sentences(30, seed=3)
    assert first != make_sentences(30, seed=4)
    assert len(set(first)) > 20
    assert all(sentence_count(s) == 1 and s[0].isupper() for s in first)


@pytest.mark.parametrize("quick", [False, True])
def test_workload_shape(quick: bool) -> None:
    workload = build_workload(quick)
    assert workload == build_workload(quick)  # fixed: every run measures the same thing
    sizes = [
        sentence_count(text)
        for requests in workload.throughput_rounds
        for texts in requests
        for text in texts
    ]
    assert all(len(requests) == 16 for requests in workload.throughput_rounds)  # clients
    assert set(sizes) == {1, 2}  # mixed one- and two-sentence requests
    assert sentence_count(workload.stream_text) == 20
    assert all(sentence_count(text) == 1 for text in workload.short_texts)
    assert workload.long_clients == 4


def test_full_workload_mixes_request_sizes_and_uses_20_sentence_long_texts() -> None:
    workload = build_workload(quick=False)
    assert sentence_count(workload.long_text) == 20
    sizes = {
        sentence_count(text)
        for requests in workload.throughput_rounds
        for texts in requests
        for text in texts
    }
    assert sizes == {1, 2}
    assert all(len(texts) > 1 for requests in workload.throughput_rounds for texts in requests)


# ------------------------------------------------------------------ tables


def test_format_table_aligns_columns() -> None:
    table = format_table(["", "a", "bbb"], [["row one", "1", "22"], ["r2", "333", "4"]])
    assert table.splitlines() == [
        "           a  bbb",
        "-------  ---  ---",
        "row one    1   22",
        "r2       333    4",
    ]


def test_format_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="as many cells"):
        format_table(["a", "b"], [["only one"]])


def make_report() -> BenchReport:
    serial = TargetResult("serial", rounds=[Sample(10.0, 100.0, 0.1)], first_audio_s=[0.2, 0.3])
    fifo = TargetResult(
        "fifo",
        rounds=[Sample(20.0, 100.0, 0.1)],
        short_latencies_s=[10.0, 14.0],
        long_requests_done=4,
        first_audio_s=[0.4],
        mp3_first_byte_s=[0.5],
        noise=[0.1, 0.3],
    )
    fair = TargetResult(
        "fair",
        rounds=[Sample(9.0, 99.0, 0.1)],
        short_latencies_s=[0.3] * 18 + [0.6, 0.9],  # p95 = 19th of 20 = 0.6
        long_requests_done=0,
        first_audio_s=[0.35, 0.3, 0.4],
        mp3_first_byte_s=[0.5],
    )
    return BenchReport(
        serial=serial,
        policies={"fifo": fifo, "fair": fair},
        encode_s={"mp3": 0.5, "opus": 1.5, "aac": 0.4, "wav": 0.001},
        encode_synth_s=10.0,
        encode_audio_s=100.0,
        phonemize_s=0.02,
        meta={},
        words=WordCost(sentences=5, synth_s=0.2, synth_timed_s=0.202, words_s=0.004),
    )


def test_report_ratios_are_relative_to_serial_and_fifo() -> None:
    report = make_report()
    assert report.throughput_ratio("fair") == pytest.approx(1.1)  # 11 / 10 audio s per s
    assert report.throughput_ratio("fifo") == pytest.approx(0.5)
    assert report.short_p95_ratio("fair") == pytest.approx(0.6 / 14.0)
    assert report.first_audio_ratio("fair") == pytest.approx(0.35 / 0.25)  # medians
    assert report.mp3_first_ratio("fair") == pytest.approx(2.0)
    assert report.encode_ratio("opus") == pytest.approx(0.15)
    assert report.short_p95_ratio("round_robin") is None


def test_throughput_ratio_is_the_median_round() -> None:
    report = make_report()
    report.serial.rounds = [Sample(10.0, 100.0, 0.0)] * 3
    # Round 3 ran while something else had the CPU: the median ignores it, a pool would not.
    report.policies["fair"].rounds = [
        Sample(10.0, 110.0, 0.0),
        Sample(10.0, 120.0, 0.0),
        Sample(20.0, 100.0, 0.4),
    ]
    assert report.throughput_ratio("fair") == pytest.approx(1.1)
    assert report.throughput_spread("fair") == pytest.approx([1.1, 1.2, 0.5])
    assert report.policies["fair"].throughput == pytest.approx(330.0 / 40.0)


def test_goals_are_judged_on_fair() -> None:
    verdicts = {goal["name"]: goal["verdict"] for goal in make_report().goals()}
    assert verdicts == {
        "throughput fair / serial": "PASS",
        "short p95 fair / fifo": "PASS",
        "first audio fair / serial": "PASS",
        "mp3 first byte fair / serial": "MISS",
        "mp3 encode / synthesis": "PASS",
        "opus encode / synthesis": "MISS",
        "aac encode / synthesis": "PASS",
        "word timestamps / synthesis": "PASS",
    }


def test_word_timestamps_cost_both_parts_against_synthesis() -> None:
    cost = WordCost(sentences=5, synth_s=0.2, synth_timed_s=0.202, words_s=0.004)
    assert cost.model_ratio == pytest.approx(0.01)
    assert cost.words_ratio == pytest.approx(0.02)
    assert cost.ratio == pytest.approx(0.03)
    slower = WordCost(sentences=5, synth_s=0.2, synth_timed_s=0.21, words_s=0.002)
    assert slower.ratio == pytest.approx(0.06)  # 5 % from the model alone + 1 %: a miss
    report = make_report()
    report.words = slower
    verdicts = {goal["name"]: goal["verdict"] for goal in report.goals()}
    assert verdicts["word timestamps / synthesis"] == "MISS"
    row = next(line for line in render(report).splitlines() if "timestamps in all" in line)
    assert "0.060x" in row and "MISS" in row
    assert report.to_dict()["word_timestamps"]["ratio_to_synthesis"] == pytest.approx(0.06)


def test_render_shows_ratios_verdicts_and_noise() -> None:
    text = render(make_report())
    lines = text.splitlines()
    header = lines[0].split()
    assert header == ["serial", "Piper", "fifo", "fair", "goal", "(fair)"]
    ratio_row = next(line for line in lines if "ratio to serial (median round)" in line)
    assert "0.50x MISS" in ratio_row and "1.10x PASS" in ratio_row
    p95_row = next(line for line in lines if "p95 ratio to fifo" in line)
    assert "0.043x PASS" in p95_row
    noise_row = next(line for line in lines if line.startswith("other processes"))
    assert noise_row.split()[-3:] == ["-", "20%", "-"]  # serial, fifo, fair
    opus_row = next(line for line in lines if line.startswith("opus"))
    assert opus_row.split() == ["opus", "1.500", "s", "0.15x", "<=", "0.10x", "MISS"]
    wav_row = next(line for line in lines if line.startswith("wav"))
    assert "PASS" not in wav_row and "MISS" not in wav_row  # no goal for uncompressed
    assert "unbatched" not in text  # no batching target, no row for it


def test_word_cost_is_measured_on_both_voices(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny-aligned", 1, alignments=True)
    files = VoiceFiles("tiny-aligned", model, model.with_name("tiny-aligned.onnx.json"))
    text = "One sentence here. In 1984 it cost $3.50! A third one."
    cost = measure_word_cost(files, text, sentences=2, repeats=2, threads=1)
    assert cost.sentences == 2
    assert cost.synth_s > 0 and cost.synth_timed_s > 0  # (words_s, a difference of two
    # timings, may come out below zero on a text this short)


# ------------------------------------------------------------------ memory rows


def test_memory_rows_judge_the_service_and_show_the_soak() -> None:
    from tts_service.bench.memory import MemoryResult, render_memory

    serial = MemoryResult(rss_idle_mb=150, rss_after_mb=315, peak_mb=315, throughput=4.0)
    service = MemoryResult(
        rss_idle_mb=226, rss_after_mb=234, peak_mb=744, ready_s=2.5, throughput=10.0,
        soak_mb={60: 250.0, 300: 245.0},
    )  # fmt: skip
    table = render_memory(serial, service, bursts=3)
    assert re.search(r"RSS after 3 burst\(s\) of 16 +315 MB +234 MB PASS +<= 340 MB", table)
    assert re.search(r"over serial Piper's +-81 MB", table)
    assert re.search(r"ready after process start +2.50 s MISS +<= 1.5 s", table)
    assert re.search(r"soak: RSS after 300 / after 60 requests +0.980 PASS", table)
    heavy = MemoryResult(rss_after_mb=400, soak_mb={60: 250.0, 300: 300.0})
    table = render_memory(serial, heavy, bursts=1)
    assert "400 MB MISS" in table and "1.200 MISS" in table


def test_burst_texts_are_fixed_two_sentence_texts() -> None:
    from tts_service.bench.memory import BURST_CLIENTS, burst_texts

    bursts = burst_texts(3)
    assert bursts == burst_texts(3)  # the same in every run
    assert len(bursts) == 3 and all(len(texts) == BURST_CLIENTS for texts in bursts)
    assert all(sentence_count(text) == 2 for texts in bursts for text in texts)
    assert len({text for texts in bursts for text in texts}) == 3 * BURST_CLIENTS


# ------------------------------------------------------------------ the concurrency sweep


def test_stream_counts_parse_in_order_once_each() -> None:
    assert parse_counts("1,8,32,128") == [1, 8, 32, 128]
    assert parse_counts(" 4, 1,4") == [4, 1]


@pytest.mark.parametrize("spec", ["", "0", "-1", "1,,8", "eight", "1.5", "1025"])
def test_bad_stream_counts_are_refused(spec: str) -> None:
    with pytest.raises(BenchError, match="stream count"):
        parse_counts(spec)


def test_each_stream_has_its_own_fixed_multi_sentence_text() -> None:
    workload = sweep_workload(quick=False)
    texts = workload.texts(8)
    assert texts == sweep_workload(quick=False).texts(8)  # the same in every run
    assert workload.texts(2) == texts[:2]  # client i sends the same text at every N
    assert len(set(texts)) == 8
    assert all(sentence_count(text) == workload.sentences > 1 for text in texts)
    assert sweep_workload(quick=True).rounds == 1


def test_a_cell_counts_refusals_and_times_only_served_streams() -> None:
    cell = Cell()
    cell.add(Sample(2.0, 9.0, None), [Stream(0.5, 4.0), Stream(None), Stream(0.7, 5.0)])
    cell.add(Sample(2.0, 3.0, None), [Stream(0.9, 3.0), Stream(None), Stream(None)])
    assert (cell.streams, cell.refused) == (6, 3)
    assert cell.first_audio_s == [0.5, 0.7, 0.9]
    assert cell.throughput == pytest.approx(3.0)  # 12 audio s in 4 wall s
    assert (cell.p50, cell.p95) == (0.7, 0.9)
    assert Cell().p95 is None and Cell().throughput is None


def sweep_cell(rounds: list[tuple[float, float]], first: list[float], refused: int = 0) -> Cell:
    return Cell(
        rounds=[Sample(wall, audio, 0.1) for wall, audio in rounds],
        first_audio_s=first,
        streams=len(first) + refused,
        refused=refused,
        noise=[0.1],
    )


def make_sweep() -> SweepReport:
    targets = parse_targets("fair:cpu,fair:cuda,fair:cuda+b8", quick=False, workers=2, threads=1)
    ten = [0.1 * i for i in range(1, 21)]  # 0.1 .. 2.0: p50 1.0, p95 1.9
    cells = {
        ("fair:cpu", 1): sweep_cell([(10.0, 50.0), (10.0, 60.0), (10.0, 40.0)], [0.4, 0.5, 0.6]),
        ("fair:cuda", 1): sweep_cell([(10.0, 100.0), (10.0, 90.0), (5.0, 100.0)], [0.1] * 3),
        ("fair:cuda+b8", 1): sweep_cell([(10.0, 100.0), (10.0, 99.0), (10.0, 101.0)], [0.1] * 3),
        ("fair:cpu", 8): sweep_cell([(20.0, 100.0)], ten[:16], refused=4),
        ("fair:cuda", 8): sweep_cell([(10.0, 200.0)], [t / 2 for t in ten]),
        ("fair:cuda+b8", 8): sweep_cell([(10.0, 500.0)], [t / 4 for t in ten]),
    }
    return SweepReport(
        targets,
        [1, 8],
        cells,
        not_started={},
        devices={"fair:cpu": "cpu", "fair:cuda": "cuda", "fair:cuda+b8": "cuda"},
    )


def test_sweep_ratios_batching_on_off_and_against_the_cpu() -> None:
    report = make_sweep()
    cpu, cuda, batched = report.targets
    assert report.batching_twin(batched) == cuda
    assert report.batching_twin(cuda) is None and report.batching_twin(cpu) is None
    assert report.cpu_twin(cuda) == cpu and report.cpu_twin(batched) == cpu
    assert report.cpu_twin(cpu) is None
    # Median of the per-round ratios: cuda / cpu at 1 stream is 2.0, 1.5, 5.0 -> 2.0.
    assert report.throughput_ratio(cuda, cpu, 1) == pytest.approx(2.0)
    assert report.throughput_ratio(batched, cuda, 1) == pytest.approx(1.0)  # 1.0, 1.1, 0.505
    assert report.throughput_ratio(batched, cuda, 8) == pytest.approx(2.5)
    assert report.throughput_ratio(batched, cpu, 8) == pytest.approx(10.0)
    assert report.cells[("fair:cpu", 8)].p95 == pytest.approx(1.6)  # 16 served: 16th of 16
    assert report.p95_ratio(cuda, cpu, 8) == pytest.approx(0.95 / 1.6)
    assert report.p95_ratio(batched, cuda, 8) == pytest.approx(0.5)
    assert report.throughput_ratio(cpu, None, 8) is None


def test_sweep_table_has_a_row_group_per_stream_count() -> None:
    lines = render_sweep(make_sweep()).splitlines()
    assert lines[0].split() == ["fair:cpu", "fair:cuda", "fair:cuda+b8"]

    def row(label: str, after: str = "") -> str:
        """The cells after `label`, in the first such row after the line starting `after`."""
        start = next(i for i, line in enumerate(lines) if line.startswith(after))
        line = next(line.strip() for line in lines[start:] if line.strip().startswith(label))
        return " ".join(line[len(label) :].split())

    assert row("device in use") == "cpu cuda cuda"
    assert row("1 stream(s): audio s / wall s") == "5.00 11.60 10.00"
    assert row("refused (503/429) / streams", "8 stream(s)") == "4 / 20 0 / 20 0 / 20"
    assert row("first audio p95", "8 stream(s)") == "1.600 s 0.950 s 0.475 s"
    # Batching ratios only under the batching target, CPU ratios only under GPU targets.
    assert row("throughput batching on / off", "8 stream(s)") == "2.50x"
    assert row("first audio p95 batching on / off", "8 stream(s)") == "0.50x"
    assert row("throughput / cpu", "8 stream(s)") == "4.00x 10.00x"  # 20 and 50 against 5
    assert row("other processes' CPU (noise)") == "10% 10% 10%"


def test_sweep_without_gpu_or_batching_targets_has_no_ratio_rows() -> None:
    report = make_sweep()
    cpu = report.targets[0]
    report.targets = [cpu]
    text = render_sweep(report)
    assert "batching on / off" not in text and "/ cpu" not in text
    report.not_started = {"fair:cuda": "the server did not start: CUDA is not available"}
    assert render_sweep(report).splitlines()[-1] == (
        "not measured: fair:cuda: the server did not start: CUDA is not available"
    )


def test_sweep_json_has_every_figure_and_what_did_not_start() -> None:
    report = make_sweep()
    report.not_started = {"fair:auto": "no"}
    data = report.to_dict()
    assert data["stream_counts"] == [1, 8]
    cpu8 = data["targets"]["fair:cpu"]["by_streams"]["8"]
    assert (cpu8["streams"], cpu8["refused"], cpu8["first_audio_p95_s"]) == (20, 4, 1.6)
    batched = data["targets"]["fair:cuda+b8"]
    assert batched["device"] == "cuda" and batched["batch_size"] == 8
    assert batched["by_streams"]["8"]["throughput_ratio_to_unbatched"] == pytest.approx(2.5)
    assert batched["by_streams"]["8"]["throughput_ratio_to_cpu"] == pytest.approx(10.0)
    assert data["targets"]["fair:cpu"]["by_streams"]["1"]["throughput_ratio_to_cpu"] is None
    assert data["not_started"] == {"fair:auto": "no"}
