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
BATCH_SIZE = 2048
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-6
GATE_LEARNING_RATE = 1e-3

# The search stage: pretraining with open gates, then bi-level search.
PRETRAIN_EPOCHS = 2
SEARCH_EPOCHS = 3
GATE_EVERY = 100  # one architecture step on a validation batch after this many training batches

# The Bernoulli gates and their regularizer (the paper's Eq. 5).
REGULARIZATION_WEIGHT = 1e-4
LAM = 1.2
TEMPERATURE = 0.1  # of the straight-through Gumbel-Softmax sample
INITIAL_PROBABILITY = 0.5
THRESHOLD_BINS = 100  # the histogram threshold searcher
THRESHOLD_SMOOTHING = 5

# Clustering and retraining.
CLUSTERS = 2
RETRAIN_EPOCHS = 3
PATIENCE = 3  # early stopping on validation AUC

# Data: the split seed, the rare-value threshold of the vocabularies, the bad-row limit.
SPLIT_SEED = 0
FREQUENCY_THRESHOLD = 10
MAX_BAD_FRACTION = 0.001
SHUFFLE_BUFFER = 10_000

# Blessing: the routed model is pushed when its test AUC >= the base model's - this margin.
BLESSING_MARGIN = 0.01
