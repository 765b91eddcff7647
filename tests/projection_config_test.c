/*
 * EventStoreDB's projection model in resources.yaml: run_projections,
 * start_standard_projections, system_projections, projection_settings and
 * projections: their defaults (ESDB's), every key read as written,
 * config_projection's lookup, and each refusal naming file:line:column.
 */
#include "config_testutil.h"

#define T "tenants: [{id: demo}]\n"

static void
check_settings(const proj_settings *s, uint32_t after, uint32_t handled,
    size_t bytes, uint32_t pending, uint32_t batch, uint32_t inflight)
{
	CHECK_EQ(s->checkpoint_after_ms, after);
	CHECK_EQ(s->checkpoint_handled_threshold, handled);
	CHECK_EQ(s->checkpoint_unhandled_bytes_threshold, bytes);
	CHECK_EQ(s->pending_events_threshold, pending);
	CHECK_EQ(s->max_write_batch_length, batch);
	CHECK_EQ(s->max_allowed_writes_in_flight, inflight);
}

static void
defaults(void)
{
	sl_config *cfg  = ct_load_ok(T);
	cfg_mode   mode = CFG_MODE_TRANSIENT;
	CHECK_EQ(cfg->run_projections, CFG_RUN_ALL);
	CHECK(!cfg->start_standard_projections);
	CHECK_STREQ(cfg->category_separator, "-");
	CHECK(!cfg->category_last);
	CHECK_STREQ(cfg->correlation_property, "$correlationId");
	/* EventStoreDB's ProjectionConsts.cs */
	check_settings(&cfg->proj_defaults, 0, 4000, 10000000, 5000, 500, 0);
	CHECK_EQ(cfg->n_projections, 0);
	CHECK(config_projection(cfg, "00000000-0000-0000-0000-000000000001",
	          "$by_category", &mode)
	    == &cfg->proj_defaults);
	CHECK_EQ(mode, CFG_MODE_CONTINUOUS);
	config_free(cfg);

	/* without a config: the same defaults */
	mode = CFG_MODE_TRANSIENT;
	check_settings(config_projection(NULL, "x", "y", &mode), 0, 4000,
	    10000000, 5000, 500, 0);
	CHECK_EQ(mode, CFG_MODE_CONTINUOUS);
	CHECK(config_projection(NULL, NULL, NULL, NULL) != NULL);
}

static void
every_key(void)
{
	sl_config *cfg = ct_load_ok(T "run_projections: system\n"
	                           "start_standard_projections: true\n"
	                           "system_projections:\n"
	                           "  by_category: {separator: \"::\", "
	                           "take: last}\n"
	                           "  by_correlation_id:\n"
	                           "    property: $myCorrelationId\n"
	                           "projection_settings:\n"
	                           "  checkpoint_after_ms: 250\n"
	                           "  checkpoint_handled_threshold: 10\n"
	                           "  checkpoint_unhandled_bytes_threshold: "
	                           "64KiB\n"
	                           "  pending_events_threshold: 7\n"
	                           "  max_write_batch_length: 3\n"
	                           "  max_allowed_writes_in_flight: 2\n");
	CHECK_EQ(cfg->run_projections, CFG_RUN_SYSTEM);
	CHECK(cfg->start_standard_projections);
	CHECK_STREQ(cfg->category_separator, "::");
	CHECK(cfg->category_last);
	CHECK_STREQ(cfg->correlation_property, "$myCorrelationId");
	check_settings(&cfg->proj_defaults, 250, 10, 64 * 1024, 7, 3, 2);
	config_free(cfg);

	cfg = ct_load_ok(T "run_projections: none\n"
	                "system_projections: {by_category: {take: first}}\n");
	CHECK_EQ(cfg->run_projections, CFG_RUN_NONE);
	CHECK(!cfg->category_last);
	CHECK_STREQ(cfg->category_separator, "-");
	config_free(cfg);

	cfg = ct_load_ok(T "run_projections: all\n"
	                "start_standard_projections: false\n"
	                "system_projections:\n"
	                "  by_category: {separator: \"_\"}\n");
	CHECK_EQ(cfg->run_projections, CFG_RUN_ALL);
	CHECK(!cfg->start_standard_projections);
	CHECK_STREQ(cfg->category_separator, "_");
	CHECK(!cfg->category_last);
	config_free(cfg);

	/* the bounds themselves are accepted */
	cfg = ct_load_ok(T "projection_settings:\n"
	                "  checkpoint_after_ms: 3600000\n"
	                "  checkpoint_handled_threshold: 1\n"
	                "  checkpoint_unhandled_bytes_threshold: 1GiB\n"
	                "  pending_events_threshold: 1000000\n"
	                "  max_write_batch_length: 100000\n"
	                "  max_allowed_writes_in_flight: 1024\n");
	check_settings(&cfg->proj_defaults, 3600000, 1, (size_t) 1 << 30,
	    1000000, 100000, 1024);
	config_free(cfg);
}

static void
projections(void)
{
	/* entries take projection_settings for what they do not set, wherever
	 * projection_settings is in the file */
	sl_config *cfg = ct_load_ok(T
	    "projections:\n"
	    "  - name: totals\n"
	    "    mode: one_time\n"
	    "  - name: 0A1B2C3D-0000-4000-8000-00000000ABCD\n"
	    "    checkpoint_handled_threshold: 100\n"
	    "    max_allowed_writes_in_flight: 1\n"
	    "  - {name: live, mode: transient, pending_events_threshold: 9}\n"
	    "  - name: $by_event_type\n"
	    "    mode: continuous\n"
	    "    checkpoint_after_ms: 5\n"
	    "    checkpoint_unhandled_bytes_threshold: 2MiB\n"
	    "    max_write_batch_length: 50\n"
	    "  - name: 00000000-0000-0000-0000-000000000005\n"
	    "projection_settings:\n"
	    "  pending_events_threshold: 100\n");
	cfg_mode   mode;
	CHECK_EQ(cfg->n_projections, 5);
	CHECK_STREQ(cfg->projections[0].name, "totals");
	CHECK_EQ(cfg->projections[0].mode, CFG_MODE_ONE_TIME);
	check_settings(
	    &cfg->projections[0].set, 0, 4000, 10000000, 100, 500, 0);
	/* ids are kept as canonical lower case */
	CHECK_STREQ(
	    cfg->projections[1].name, "0a1b2c3d-0000-4000-8000-00000000abcd");
	CHECK_EQ(cfg->projections[1].mode, CFG_MODE_CONTINUOUS);
	check_settings(
	    &cfg->projections[1].set, 0, 100, 10000000, 100, 500, 1);
	CHECK_EQ(cfg->projections[2].mode, CFG_MODE_TRANSIENT);
	check_settings(&cfg->projections[2].set, 0, 4000, 10000000, 9, 500, 0);
	check_settings(&cfg->projections[3].set, 5, 4000, 2 << 20, 100, 50, 0);
	check_settings(&cfg->proj_defaults, 0, 4000, 10000000, 100, 500, 0);

	/* lookup: by id (any case), by name; an id entry wins */
	mode = CFG_MODE_CONTINUOUS;
	CHECK(config_projection(
	          cfg, "aaaaaaaa-0000-4000-8000-000000000000", "totals", &mode)
	    == &cfg->projections[0].set);
	CHECK_EQ(mode, CFG_MODE_ONE_TIME);
	CHECK(config_projection(
	          cfg, "0A1B2C3D-0000-4000-8000-00000000abcd", "totals", &mode)
	    == &cfg->projections[1].set);
	CHECK_EQ(mode, CFG_MODE_CONTINUOUS);
	CHECK(config_projection(cfg, NULL, "live", &mode)
	    == &cfg->projections[2].set);
	CHECK_EQ(mode, CFG_MODE_TRANSIENT);
	CHECK(config_projection(cfg, "00000000-0000-0000-0000-000000000002",
	          "$by_event_type", NULL)
	    == &cfg->projections[3].set);
	CHECK(config_projection(cfg, "00000000-0000-0000-0000-000000000005",
	          "$streams", NULL)
	    == &cfg->projections[4].set);
	mode = CFG_MODE_ONE_TIME;
	CHECK(config_projection(cfg, "00000000-0000-0000-0000-000000000001",
	          "$by_category", &mode)
	    == &cfg->proj_defaults);
	CHECK_EQ(mode, CFG_MODE_CONTINUOUS);
	CHECK(config_projection(cfg, NULL, "Totals", NULL)
	    == &cfg->proj_defaults); /* names match exactly */
	config_free(cfg);

	cfg = ct_load_ok(T "projections: []\n");
	CHECK_EQ(cfg->n_projections, 0);
	config_free(cfg);
}

static void
refusals(void)
{
	/* run_projections, start_standard_projections */
	ct_expect_err(T "run_projections: some\n", "2:18",
	    "key 'run_projections': expected one of none, system, all, got "
	    "'some'");
	ct_expect_err(T "run_projections: All\n", "2:18",
	    "expected one of none, system, all, got 'All'");
	ct_expect_err(T "run_projections: [all]\n", "2:18",
	    "key 'run_projections': expected one of none, system, all, got a "
	    "sequence");
	ct_expect_err(T "start_standard_projections: yes\n", "2:29",
	    "key 'start_standard_projections': expected true or false, got "
	    "'yes'");

	/* system_projections */
	ct_expect_err(T "system_projections: 1\n", "2:21",
	    "key 'system_projections': expected a mapping, got '1'");
	ct_expect_err(T "system_projections:\n  by_stream: {}\n", "3:3",
	    "unknown key 'system_projections.by_stream'");
	ct_expect_err(T "system_projections:\n  by_category: {sep: x}\n", "3:17",
	    "unknown key 'system_projections.by_category.sep'");
	ct_expect_err(T "system_projections:\n  by_category: {separator: \"\"}\n",
	    "3:28",
	    "key 'system_projections.by_category.separator': must not be "
	    "empty");
	ct_expect_err(T "system_projections:\n  by_category: {separator: "
	             "\"12345678901234567\"}\n",
	    "3:28",
	    "key 'system_projections.by_category.separator': is 17 bytes, "
	    "max 16");
	ct_expect_err(T "system_projections:\n  by_category: {separator: "
	             "\"a\\0b\"}\n",
	    "3:28", "must not contain a NUL byte");
	ct_expect_err(T "system_projections:\n  by_category: {separator: [x]}\n",
	    "3:28",
	    "key 'system_projections.by_category.separator': expected a "
	    "non-empty string, got a sequence");
	ct_expect_err(T "system_projections:\n  by_category: {take: middle}\n",
	    "3:23",
	    "key 'system_projections.by_category.take': expected first or "
	    "last, got 'middle'");
	ct_expect_err(T "system_projections:\n"
	             "  by_category: {take: last, take: first}\n",
	    "3:29",
	    "duplicate key 'system_projections.by_category.take' (first at "
	    "line 3)");
	ct_expect_err(T "system_projections:\n  by_correlation_id:\n"
	             "    property: ''\n",
	    "4:15",
	    "key 'system_projections.by_correlation_id.property': must not "
	    "be empty");
	ct_expect_err(T "system_projections:\n  by_correlation_id: {prop: x}\n",
	    "3:23", "unknown key 'system_projections.by_correlation_id.prop'");
	ct_expect_err(T "system_projections:\n  by_correlation_id: x\n", "3:22",
	    "key 'system_projections.by_correlation_id': expected a mapping");

	/* projection_settings: each setting's type and bounds */
	ct_expect_err(T "projection_settings:\n  checkpoint_after: 5\n", "3:3",
	    "unknown key 'projection_settings.checkpoint_after'");
	ct_expect_err(T "projection_settings:\n  checkpoint_after_ms: -1\n",
	    "3:24",
	    "key 'projection_settings.checkpoint_after_ms': -1 is out of "
	    "range 0..3600000");
	ct_expect_err(T "projection_settings:\n  checkpoint_after_ms: 3600001\n",
	    "3:24", "out of range 0..3600000");
	ct_expect_err(T "projection_settings:\n"
	             "  checkpoint_handled_threshold: 0\n",
	    "3:33",
	    "key 'projection_settings.checkpoint_handled_threshold': 0 is out "
	    "of range 1..1000000");
	ct_expect_err(T "projection_settings:\n"
	             "  checkpoint_handled_threshold: many\n",
	    "3:33", "expected an integer, got 'many'");
	ct_expect_err(T "projection_settings:\n"
	             "  checkpoint_unhandled_bytes_threshold: 100\n",
	    "3:41",
	    "key 'projection_settings.checkpoint_unhandled_bytes_threshold': "
	    "100 is out of range 1KiB..1GiB");
	ct_expect_err(T "projection_settings:\n"
	             "  checkpoint_unhandled_bytes_threshold: 2GiB\n",
	    "3:41", "2GiB is out of range 1KiB..1GiB");
	ct_expect_err(T "projection_settings:\n"
	             "  checkpoint_unhandled_bytes_threshold: 10MB\n",
	    "3:41", "expected a size");
	ct_expect_err(T "projection_settings:\n  pending_events_threshold: 0\n",
	    "3:29",
	    "key 'projection_settings.pending_events_threshold': 0 is out of "
	    "range 1..1000000");
	ct_expect_err(T "projection_settings:\n"
	             "  pending_events_threshold: 1000001\n",
	    "3:29", "out of range 1..1000000");
	ct_expect_err(T "projection_settings:\n  max_write_batch_length: 0\n",
	    "3:27",
	    "key 'projection_settings.max_write_batch_length': 0 is out of "
	    "range 1..100000");
	ct_expect_err(T "projection_settings:\n"
	             "  max_allowed_writes_in_flight: 1025\n",
	    "3:33",
	    "key 'projection_settings.max_allowed_writes_in_flight': 1025 is "
	    "out of range 0..1024");
	ct_expect_err(T "projection_settings: [1]\n", "2:22",
	    "key 'projection_settings': expected a mapping, got a sequence");

	/* projections */
	ct_expect_err(T "projections: {name: x}\n", "2:14",
	    "key 'projections': expected a sequence, got a mapping");
	ct_expect_err(T "projections:\n  - totals\n", "3:5",
	    "key 'projections[0]': expected a mapping, got 'totals'");
	ct_expect_err(T "projections:\n  - {mode: one_time}\n", "3:5",
	    "missing required key 'projections[0].name'");
	ct_expect_err(T "projections:\n  - {name: x, colour: red}\n", "3:15",
	    "unknown key 'projections[0].colour'");
	ct_expect_err(T "projections:\n  - {name: x, name: y}\n", "3:15",
	    "duplicate key 'projections[0].name' (first at line 3)");
	ct_expect_err(T "projections:\n  - {name: ''}\n", "3:12",
	    "key 'projections[0].name': must not be empty");
	ct_expect_err(T "projections:\n  - {name: x, mode: onetime}\n", "3:21",
	    "key 'projections[0].mode': expected one of continuous, one_time, "
	    "transient, got 'onetime'");
	ct_expect_err(T
	    "projections:\n  - {name: x, max_write_batch_length: 0}\n",
	    "3:39",
	    "key 'projections[0].max_write_batch_length': 0 is out of range "
	    "1..100000");
	ct_expect_err(T "projections:\n"
	             "  - {name: x}\n"
	             "  - {name: y}\n"
	             "  - {name: x, mode: one_time}\n",
	    "5:12",
	    "key 'projections[2].name': duplicate projection 'x' (first at "
	    "projections[0], line 3)");
	/* an id written in another case is the same projection */
	ct_expect_err(T "projections:\n"
	             "  - {name: 0a1b2c3d-0000-4000-8000-00000000abcd}\n"
	             "  - {name: 0A1B2C3D-0000-4000-8000-00000000ABCD}\n",
	    "4:12", "duplicate projection");
	ct_expect_err(T "projections:\n  - {name: $by_stream}\n", "3:12",
	    "key 'projections[0].name': no system projection is named "
	    "'$by_stream'");
	ct_expect_err(T
	    "projections:\n  - {name: $by_category, mode: one_time}\n",
	    "3:32",
	    "key 'projections[0].mode': system projection '$by_category' runs "
	    "continuously only");
	ct_expect_err(T "projections:\n"
	             "  - name: 00000000-0000-0000-0000-000000000003\n"
	             "    mode: transient\n",
	    "4:11", "runs continuously only");
}

int
main(void)
{
	defaults();
	every_key();
	projections();
	refusals();
	printf("projection_config_test: ok\n");
	return 0;
}
