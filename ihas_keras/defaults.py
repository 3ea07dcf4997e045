"""The method's default hyperparameters, defined here once.

The library's signatures, the `ihas` command line, the experiment runner's settings, the TFX
components and the pipeline configuration all read their defaults from this module, so a default
changed here changes everywhere. The paper's values where it gives them; where it is silent, the
choice is explained in the README ("Choices where the paper is silent").
"""

# The recommender: per-field embedding width and the backbone.
EMBEDDING_DIM = 16
BACKBONE = "dnn"
HIDDEN_UNITS = (16, 8)
CROSS_LAYERS = 2  # DCN-v2 cross layers

# Optimization of every model: Adam with weight decay on the base parameters, plain Adam on the
# architecture parameters (iHAS gates, the AdaFS controller, AutoField's keep/drop logits).
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-6
GATE_LEARNING_RATE = 1e-2  # measured: at 1e-3 the gates do not polarize (benchmarks/README)
# Embedding tables are updated lazily (`ihas_keras.optimizers.LazyAdam`: the looked-up rows only).
LAZY_ADAM = True
LAZY_ADAM_CATCH_UP = True  # rare rows take the steps dense Adam would (benchmarks/README)
# XLA compilation of every model's training step (`compile_recommender`, the bi-level models'
# `compile`): for GPUs, off by default. Mixed precision is Keras's own dtype policy
# (`keras.config.set_dtype_policy`, or `precision.dtype_policy` for one block of work; the
# pipeline's setting): float32 unless a user sets it.
JIT_COMPILE = False
DTYPE_POLICY = "float32"
# The tf.distribute strategy the models train under, by name (`ihas_keras.distribute`):
# "default" (one device), "one_device", "mirrored" (local GPUs or logical CPUs) or
# "multi_worker" (TF_CONFIG's workers).
STRATEGY = "default"

# The training rule of every model (`ihas_keras.schedule`): train until the validation AUC has
# not improved for PATIENCE epochs, best weights restored, at most MAX_EPOCHS epochs a phase.
MAX_EPOCHS = 50
PATIENCE = 3
# The batch size is a rule of the training rows: the largest power of two that still gives
# MIN_STEPS_PER_EPOCH batches an epoch, between MIN_BATCH_SIZE and BATCH_SIZE (the paper's).
BATCH_SIZE = 2048
MIN_BATCH_SIZE = 256
MIN_STEPS_PER_EPOCH = 100
# The gate schedule is a rule of the batches per epoch: one architecture step on a validation
# batch after every steps // GATE_STEPS_PER_EPOCH training batches, at least every
# MAX_GATE_EVERY.
GATE_STEPS_PER_EPOCH = 16
MAX_GATE_EVERY = 5

# The search stage: pretraining with open gates, then bi-level search (each to early stop).
PRETRAIN_EPOCHS = MAX_EPOCHS
SEARCH_EPOCHS = MAX_EPOCHS

# The Bernoulli gates and their regularizer (the paper's Eq. 5).
REGULARIZATION_WEIGHT = 1e-4
LAM = 1.2
TEMPERATURE = 0.1  # of the straight-through Gumbel-Softmax sample
INITIAL_PROBABILITY = 0.5
GATE_RANK = 0  # the gate's Dense N* -> N* in full; r > 0: factored as N* -> r -> N*
THRESHOLD_BINS = 100  # the histogram threshold searcher
THRESHOLD_SMOOTHING = 5

# Clustering and retraining.
CLUSTERS = 2
CLUSTER_CANDIDATES = (1, 2, 3, 4)  # the K tried by clusters "auto", chosen by validation AUC
# What K-Means clusters: the paper's masked embeddings E * m, whose clusters follow planted
# segments best (ARI, 1M rows; benchmarks/README "Issue 15"); "probability" (higher routed AUC
# on 10k Criteo rows, a tie at 1M) and "mask" are the alternatives.
REPRESENTATION = "masked_embedding"
CLUSTER_SAMPLE = 50_000  # examples K-Means is fitted on (a uniform sample of the stream)
KMEANS_RESTARTS = 10  # K-Means initialisations; the best (lowest inertia) is kept
# The gate's one threshold for all examples (computed on this many training examples) replaces
# the per-example histogram threshold at routing where it decides at least this fraction of the
# mask entries alike: all of them, since a 98 % agreement still moved 22 % of the examples to the
# other cluster when K-Means clustered the per-example masks (tests/test_routed.py).
GLOBAL_THRESHOLD_ROWS = 20_000
GLOBAL_THRESHOLD_AGREEMENT = 1.0
WARM_START = True  # per-cluster models start from the search model's kept columns
# Cluster models: towers over one shared embedding, trained as one model (False: one recommender
# with its own embeddings per cluster). A tie in AUC, 3x faster to retrain (benchmarks/README).
SHARED_EMBEDDING = True
RETRAIN_EPOCHS = MAX_EPOCHS
# How the served routed model picks a cluster: "gate" (the paper's: the search model's gate and
# the nearest centroid) or "distilled" (a linear router over the towers' embedding, trained to
# reproduce the gate's routing; shared towers only).
ROUTING = "distilled"
ROUTER_LEARNING_RATE = 1e-2
ROUTER_SAMPLE = 200_000  # examples (of train, and of validation) the router is distilled on
ROUTER_MIN_DELTA = 1e-3  # the distilled router stops once its agreement gains less an epoch
# The distilled router is served only where it sends at least this fraction of the validation
# examples to the gate's cluster; otherwise the model keeps routing by the gate.
MIN_ROUTER_AGREEMENT = 0.99

# Data: the split seed, the rare-value threshold of the vocabularies, the bad-row limit.
SPLIT_SEED = 0
FREQUENCY_THRESHOLD = 10
MAX_BAD_FRACTION = 0.001
SHUFFLE_BUFFER = 10_000

# Blessing (the pipeline's Evaluate): the routed model is pushed when its test AUC >= the base
# model's - BLESSING_MARGIN, >= the last blessed (pushed) model's - LAST_BLESSED_MARGIN (both
# scored on the same test split; about one standard error of a paired AUC on 100k rows) and
# >= MIN_AUC.
BLESSING_MARGIN = 0.01
LAST_BLESSED_MARGIN = 0.001
MIN_AUC = 0.5
