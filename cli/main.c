/* kvattn: the command-line front end of libkvattn. */
#include "commands.h"

#include "kvattn.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "KV bytes and decode speed of MHA, GQA-8, MQA and MLA on built-in layer shapes"},
    {"plan", cmd_plan, "KV-cache memory of a model in every design, and the GPUs it needs"},
    {"run", cmd_run, "generate text with a model (GGUF llama, llama2.c, Hugging Face safetensors)"},
    {"chat", cmd_chat, "a conversation with a model, in its chat template, over one KV cache"},
    {"info", cmd_info, "a model's architecture, shapes, parameters and KV bytes per token"},
    {"eval", cmd_eval, "perplexity of a model over a text file, or against a reference model"},
    {"convert", cmd_convert, "a model's attention turned into GQA, MQA or MLA, written as GGUF"},
    {"uptrain", cmd_uptrain, "a converted model distilled from its original, to win back its accuracy"},
    {"retention", cmd_retention, "what each conversion of a model's attention costs: KV bytes against accuracy"},
    {"tokenize", cmd_tokenize, "the ids a model's vocabulary gives a text (as llama-tokenize prints them)"},
    {"export", cmd_export, "write a model as GGUF (f32, f16, bf16 or q8_0 weights)"},
    {"batch", cmd_batch, "many prompts at once: continuous batching over one paged KV pool with prefix reuse"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server: continuous batching over one paged KV pool"},
    {"bench", cmd_bench, "attention and models against this machine's bandwidth and FMA peak"},
};

static void usage(FILE *f) {
    fprintf(f,
            "kvattn %s — KV-cached attention: MHA, GQA, MQA and MLA\n\n"
            "usage: kvattn COMMAND [options]     (kvattn COMMAND --help for its options)\n\ncommands:\n",
            KVATTN_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-9s %s\n", "version", "print the version");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") && argc > 2) { /* kvattn help CMD = kvattn CMD --help */
        char *help_argv[] = {argv[2], "--help", NULL};
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (!strcmp(argv[2], commands[i].name)) return commands[i].run(2, help_argv);
        fprintf(stderr, "kvattn help: unknown command '%s'\n\n", argv[2]);
        usage(stderr);
        return 2;
    }
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("kvattn %s\n", KVATTN_VERSION);
        printf("cpu: %s\nkernels: %s\n", kvattn_cpu_name(), kvattn_isa());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kvattn: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
