/* kvattn info: a model file described. */
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"

#include "kvattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_info(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model", "-z", "--kv-type", "--json", NULL};
    int rc = model_opts_parse(argc, argv, &o, "info", "-m MODEL [-z TOKENIZER] [--kv-type TYPE] [--json]",
                              "Architecture, shapes, attention design, parameters, KV bytes per token, context length.",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    kvattn_model *m = model_load(&o, "info", 0);
    if (!m) return 1;
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_layer_config *a = &d->attn;
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    char design[32], b1[32], b2[32];
    kvattn_config_design_name(a, design, sizeof design);
    int64_t params = kvattn_model_params(d);
    size_t bpt = kvattn_kv_bytes_per_token(a, d->n_layers, o.k_type);
    int pre_known = 1;
    const char *pre = tok ? kvattn_tokenizer_pre(tok, &pre_known) : "";
    if (o.json) {
        printf("{\"model\": ");
        cli_json_string(stdout, d->name, strlen(d->name));
        printf(", \"format\": \"%s\", \"arch\": \"%s\", \"design\": \"%s\", \"layers\": %d, \"d_model\": %d, "
               "\"n_heads\": %d, \"n_kv_heads\": %d, \"head_dim\": %d, \"ffn_dim\": %lld, \"vocab_size\": %lld, "
               "\"context_length\": %lld, \"params\": %lld, \"weight_bytes\": %llu, \"kv_type\": \"%s\", "
               "\"kv_bytes_per_token\": %zu, \"tokenizer\": %s",
               kvattn_model_format(m), d->arch, design, d->n_layers, a->d_model, a->n_heads,
               a->kind == KVATTN_ATTN_GQA ? a->n_kv_heads : 1, a->kind == KVATTN_ATTN_GQA ? a->head_dim : 0,
               (long long)d->ffn_dim, (long long)d->vocab_size, (long long)d->context_length, (long long)params,
               (unsigned long long)kvattn_model_weight_bytes(m), kvattn_type_name(o.k_type), bpt,
               !tok                                             ? "null"
               : kvattn_tokenizer_kind(tok) == KVATTN_VOCAB_SPM ? "\"spm\""
                                                                : "\"bpe\"");
        printf(", \"pre_tokenizer\": ");
        if (*pre) cli_json_string(stdout, pre, strlen(pre));
        else printf("null");
        printf(", \"qkv_bias\": %s, \"qk_norm\": %s, \"experts\": %d, \"experts_per_token\": %d, "
               "\"shared_experts\": %d, \"expert_ffn_dim\": %lld",
               d->qkv_bias ? "true" : "false", d->qk_norm ? "true" : "false", d->n_routed_experts, d->n_active_experts,
               d->n_shared_experts, (long long)d->moe_ffn_dim);
        printf(", \"pre_tokenizer_known\": %s, \"conversion\": ", pre_known ? "true" : "false");
        const char *prov = kvattn_model_provenance(m);
        if (*prov) cli_json_string(stdout, prov, strlen(prov));
        else printf("null");
        printf("}\n");
    } else {
        printf("model:        %s (%s, %s)\n", d->name, kvattn_model_format(m), d->arch);
        printf("attention:    %s — %d heads", design, a->n_heads);
        if (a->kind == KVATTN_ATTN_GQA)
            printf(", %d KV heads × %d dims%s%s", a->n_kv_heads, a->head_dim, d->qkv_bias ? ", Q/K/V biases" : "",
                   d->qk_norm ? ", per-head Q/K norm" : "");
        else
            printf(", latent %d + rope %d%s", a->kv_lora_rank, a->qk_rope_head_dim,
                   a->kv_norm_off ? ", latent not normed" : "");
        printf("\nshape:        %d layers, d_model %d, ffn %lld, vocab %lld\n", d->n_layers, a->d_model,
               (long long)d->ffn_dim, (long long)d->vocab_size);
        int moe_layers = 0;
        for (int l = 0; l < d->n_layers; l++) moe_layers += kvattn_model_is_moe_layer(d, l);
        if (d->n_routed_experts)
            printf("experts:      %d routed (%d per token)%s, each ffn %lld; %d of %d layers\n", d->n_routed_experts,
                   d->n_active_experts, d->n_shared_experts ? " + shared" : "", (long long)d->moe_ffn_dim, moe_layers,
                   d->n_layers);
        printf("parameters:   %s (%s of weights)\n", cli_commas((uint64_t)params, b1, sizeof b1),
               cli_bytes((double)kvattn_model_weight_bytes(m), b2, sizeof b2));
        printf("KV cache:     %s bytes per token (%s), %s at the context of %lld\n", cli_commas(bpt, b1, sizeof b1),
               kvattn_type_name(o.k_type), cli_bytes((double)bpt * (double)d->context_length, b2, sizeof b2),
               (long long)d->context_length);
        if (*kvattn_model_provenance(m)) printf("converted:    %s\n", kvattn_model_provenance(m));
        if (tok)
            printf("tokenizer:    %s%s%s%s, %d tokens, BOS %d, EOS %d\n",
                   kvattn_tokenizer_kind(tok) == KVATTN_VOCAB_SPM ? "SentencePiece-style BPE" : "byte-level BPE",
                   *pre ? ", pre-tokenizer " : "", pre, pre_known ? "" : " (unknown: llama.cpp's default used)",
                   kvattn_tokenizer_vocab_size(tok), kvattn_tokenizer_bos(tok), kvattn_tokenizer_eos(tok));
        else
            printf("tokenizer:    none (give -z)%s%s\n", *kvattn_model_tokenizer_error(m) ? ": " : "",
                   kvattn_model_tokenizer_error(m));
    }
    kvattn_model_free(m);
    return 0;
}
