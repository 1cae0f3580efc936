# aec - a compiler for autoencoder-family networks.
#   make          builds the compiler as bin/aec and the runtime library
#   make test     installs what is missing, builds everything with -Werror, runs the suite
#   make demo     installs what is missing, trains specs/conv_ae.ae on Fashion-MNIST
#   make demo-landcover   the small U-Net on synthetic GeoTIFF land-cover tiles
CC      ?= cc
CFLAGS  ?= -O2 -g -fopenmp
WARN     = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS = -Icompiler -Ibuild -Iruntime
LDLIBS   = -lm

# compiler/: front/ (lexer, parser, AST, diagnostics), sema/, ops/ (the op registry), mid/
# (the program, fusion, autodiff, the step list, the memory plan), target/<target>/ (each
# target's schedule and emitter), tools/ (dump and the report); one header, compiler/aec.h.
COMPILER_SRC = $(wildcard compiler/*.c compiler/*/*.c compiler/*/*/*.c)
COMPILER_OBJ = build/parser.o build/lexer.o $(COMPILER_SRC:compiler/%.c=build/compiler/%.o)
COMPILER_LIB_OBJ = $(filter-out build/compiler/main.o,$(COMPILER_OBJ))
# runtime/: core/ (sessions, parameters, optimizers, checkpoints, the command line), data/
# (the data sources), cmd/ (the commands), report/ (metrics, pictures, outputs), dist.c;
# the headers stay in runtime/.
RUNTIME_SRC  = $(wildcard runtime/*.c runtime/*/*.c)
RUNTIME_OBJ  = $(RUNTIME_SRC:runtime/%.c=build/runtime/%.o)
RUNTIME_LIBS = -lopenblas -ltiff -lpng -lz -lpthread -lm

all: bin/aec build/libaert.a

bin/aec: $(COMPILER_OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/parser.c build/parser.h &: compiler/front/parser.y
	@mkdir -p build
	bison -Wall -Werror --defines=build/parser.h -o build/parser.c $<

build/lexer.c build/lexer.h &: compiler/front/lexer.l build/parser.h
	@mkdir -p build
	flex --header-file=build/lexer.h -o build/lexer.c $<

# Generated scanner and parser: their own code is not ours to warn about.
build/parser.o: build/parser.c build/lexer.h compiler/aec.h
	$(CC) $(CFLAGS) -std=gnu11 $(CPPFLAGS) -c -o $@ $<
build/lexer.o: build/lexer.c build/parser.h compiler/aec.h
	$(CC) $(CFLAGS) -std=gnu11 $(CPPFLAGS) -c -o $@ $<

build/compiler/%.o: compiler/%.c compiler/aec.h build/parser.h build/lexer.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) -c -o $@ $<

build/runtime/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) -c -o $@ $<

# sqrtf without errno: Adam's loop vectorises (its argument is never negative)
build/runtime/core/optim.o: CFLAGS += -fno-math-errno

build/libaert.a: $(RUNTIME_OBJ)
	rm -f $@
	ar rcs $@ $^

# The runtime for `aec build --mpi`: the same objects, but dist.c compiled by mpicc with
# AERT_MPI (Debian's libopenmpi-dev). The normal build needs no MPI.
MPICC ?= mpicc
mpi: all build/libaert_mpi.a
build/mpi/dist.o: runtime/dist.c $(wildcard runtime/*.h)
	@mkdir -p build/mpi
	$(MPICC) $(CFLAGS) $(WARN) $(CPPFLAGS) -DAERT_MPI -c -o $@ $<
build/libaert_mpi.a: $(filter-out build/runtime/dist.o,$(RUNTIME_OBJ)) build/mpi/dist.o
	rm -f $@
	ar rcs $@ $^

# ---- generated models: generated/<model>/ is committed; bin/<model> is built from it
MODEL_CFLAGS = -O3 -march=native -fopenmp -std=gnu11 -Wall -Wextra -Werror
SPECS = $(wildcard specs/*.ae)
MODELS = $(SPECS:specs/%.ae=%)
-include $(wildcard generated/*/model.mk)

generated: bin/aec
	@for s in $(SPECS); do bin/aec build --target cuda --no-compile "$$s" || exit 1; done

trainers: all $(MODELS:%=bin/%)

# ---- tests -------------------------------------------------------------------
TEST_COMPILER_SRC = $(wildcard tests/compiler/*.c)
TEST_RUNTIME_SRC  = $(wildcard tests/runtime/*.c)

build/test_compiler: $(TEST_COMPILER_SRC) $(COMPILER_LIB_OBJ)
	$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) -o $@ $^ -lcriterion $(LDLIBS)

build/test_runtime: $(TEST_RUNTIME_SRC) build/libaert.a
	$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) -o $@ $(TEST_RUNTIME_SRC) build/libaert.a -lcriterion $(RUNTIME_LIBS)

# ---- fuzzing (libFuzzer, clang, ASan + UBSan) -----------------------------------
FUZZ_CC     = clang
FUZZ_FLAGS  = -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
# the runtime without its command line (data.c reaches every data source, and they the rest)
FUZZ_RT_SRC = $(filter-out runtime/core/cli.c,$(RUNTIME_SRC))
FUZZ_RT_LIBS = -lopenblas -ltiff -lpng -lz -lpthread -lm
FUZZ_SECONDS ?= 15
FUZZERS = build/fuzz/fuzz_spec build/fuzz/fuzz_idx build/fuzz/fuzz_ckpt build/fuzz/fuzz_tiff

build/fuzz/fuzz_spec: tests/fuzz/fuzz_spec.c build/parser.c build/lexer.c $(COMPILER_SRC) compiler/aec.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(CPPFLAGS) -o $@ $< build/parser.c build/lexer.c $(filter-out compiler/main.c,$(COMPILER_SRC)) -lm
build/fuzz/fuzz_idx: tests/fuzz/fuzz_file.c $(FUZZ_RT_SRC) $(wildcard runtime/*.h)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -DFUZZ_IDX $(CPPFLAGS) -o $@ $< $(FUZZ_RT_SRC) $(FUZZ_RT_LIBS)
build/fuzz/fuzz_ckpt: tests/fuzz/fuzz_file.c $(FUZZ_RT_SRC) $(wildcard runtime/*.h)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -DFUZZ_CKPT $(CPPFLAGS) -o $@ $< $(FUZZ_RT_SRC) $(FUZZ_RT_LIBS)
build/fuzz/fuzz_tiff: tests/fuzz/fuzz_file.c runtime/core/io.c runtime/data/tiff.c $(wildcard runtime/*.h)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -DFUZZ_TIFF $(CPPFLAGS) -o $@ $< runtime/core/io.c runtime/data/tiff.c -ltiff -lm

# Runs every harness over its seed corpus, then fuzzes each for FUZZ_SECONDS (or exactly
# FUZZ_RUNS executions from a fixed seed, as make test does, so that CI repeats it).
fuzz: $(FUZZERS) bin/aec
	RUNS=$(FUZZ_RUNS) tests/fuzz/run.sh $(FUZZ_SECONDS)

# Differential testing with generated specs (tests/specgen/specgen.py): random valid specs,
# each checked, built with -Werror, compared with the reference interpreter and finite
# differences, trained three steps; mutants of them refused with a located error or run.
# By default fresh seeds for FUZZ_SPECS_MINUTES; make test runs a fixed set and the specs
# kept in tests/specs/found/. Failures are minimised into tests/specs/found/.
FUZZ_SPECS_MINUTES ?= 10
SPECGEN ?= --minutes $(FUZZ_SPECS_MINUTES)
fuzz-specs: all
	python3 tests/specgen/specgen.py $(SPECGEN)

# Speed and memory beside PyTorch (not part of make test): writes bench/RESULTS.md.
bench: all bin/conv_ae bin/unet_landcover_small
	sh scripts/install-deps.sh torch
	bench/run.sh

# PyTorch 2.x from PyPI in build/torch2 (about 7 GB): make bench then times it as a second column.
torch2:
	scripts/torch2-venv.sh

# What data-parallel training adds to a step, and a model of its scaling: bench/MPI.md.
bench-mpi: mpi
	bench/mpi.sh

deps-test:
	@scripts/install-deps.sh test
deps-demo:
	@scripts/install-deps.sh demo

# Two jobs where make builds (the sub-makes do not inherit a -j that CI does not give), and
# the scripts that keep one core busy two at a time (tests/lanes.sh: the CUDA tests, and the
# light ones, each about one core: measured with time(1) on the Zen 1 host). On two cores:
# 28.6 minutes on an AMD EPYC with AVX-512 (Zen 4, 2026-12-04), 42.6 on one without (Zen 1,
# 2026-12-06 04:18, clean clone of 027482a: the 200 generated specs 11.7 of them, the CUDA
# lanes 12.3, sanitizers 5.7; 47.7 and 49.5 in the two runs before, on slower hours); 48.6
# at 08:08 the same day (clean clone of 4b3c160, a slow hour: the generated specs 13.8, 9.7
# in a run an hour before with the same code but for two fixes, the CUDA lanes 12.1); 41.0 at
# 10:36 (clean clone of b767fc3, a quiet hour: the generated specs 10.3, the CUDA lanes 12.8,
# sanitizers 5.3); 41.2 at 14:08 (clean clone of 6e6564e: the generated specs 10.3, the CUDA
# lanes 12.8, sanitizers 5.3); 40.1 at 14:52 (clean clone of 80a66db).
test: deps-test
	$(MAKE) -j2 all build/test_compiler build/test_runtime
	build/test_compiler --jobs 2
	build/test_runtime --jobs 2
	tests/check-generated.sh
	$(MAKE) -j2 trainers
	tests/gradcheck/run.sh
	tests/lanes.sh tests/dense/run.sh tests/reference/run.sh
	$(MAKE) fuzz-specs SPECGEN=--found
	$(MAKE) fuzz-specs SPECGEN="--seed 1 --count 200 --mutants 100"
	tests/train/run.sh
	tests/family/run.sh
	tests/landcover/run.sh
	tests/faults/run.sh
	tests/lanes.sh "tests/torch/run.sh; tests/gis/run.sh; tests/family/images_folder.sh" \
	  "scripts/check-specs-valgrind.sh; tests/steer/run.sh"
	$(MAKE) -j2 fuzz FUZZ_RUNS=40000
	tests/sanitize.sh
	tests/lanes.sh "tests/report/run.sh; tests/export/run.sh; tests/cuda/run.sh; tests/cuda/target.sh; tests/cuda/graph.sh; tests/cuda/data.sh" \
	  "tests/cuda/nvcc_specs.sh; tests/cuda/precision.sh; tests/cuda/specs.sh quick"
	tests/lanes.sh tests/watch/run.sh "tests/mpi/run.sh; tests/slurm/run.sh"

# The CUDA target on the emulator for every example spec, the full U-Net too (tests/cuda/specs.sh;
# make test runs `specs.sh quick`, the specs tests/cuda/target.sh does not take, without the trainers).
test-cuda-full: all
	tests/cuda/run.sh
	tests/cuda/target.sh
	tests/cuda/nvcc_specs.sh
	tests/cuda/specs.sh

# Trains the convolutional autoencoder on Fashion-MNIST and writes its pictures.
DEMO_EPOCHS ?= 1
demo: deps-demo
	$(MAKE) all
	bin/aec summary specs/conv_ae.ae
	bin/aec build --out build/demo/conv_ae specs/conv_ae.ae
	bin/conv_ae train --epochs $(DEMO_EPOCHS) --out runs/conv_ae
	bin/conv_ae eval --out runs/conv_ae
	@echo "demo: reconstructions in runs/conv_ae/reconstructions.png, log in runs/conv_ae/train.csv"

# Land cover: writes synthetic GeoTIFF tiles (data/synthetic), trains the small U-Net on
# them for a few minutes, reports per-class IoU, predicts whole test tiles as GeoTIFF + PNG.
LANDCOVER_EPOCHS ?= 10
demo-landcover: deps-demo
	$(MAKE) all
	bin/aec summary specs/unet_landcover_small.ae
	bin/aec build --out build/demo/unet_landcover_small specs/unet_landcover_small.ae
	bin/unet_landcover_small train --epochs $(LANDCOVER_EPOCHS) --out runs/unet_landcover_small
	bin/unet_landcover_small eval --out runs/unet_landcover_small
	bin/unet_landcover_small predict --out runs/unet_landcover_small
	@echo "demo-landcover: predicted tiles in runs/unet_landcover_small/predictions/ (GeoTIFF + PNG)"

# predict on a synthetic 20,000 x 20,000 NAIP scene: peak memory and time (minutes; not in `test`).
big-scene: all
	bench/big_scene.sh

clean:
	rm -rf build bin

.PHONY: torch2 all test test-cuda-full clean deps-test deps-demo demo demo-landcover big-scene generated trainers fuzz fuzz-specs bench mpi bench-mpi
