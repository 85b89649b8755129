/** Types of node-lts.mjs (plain JavaScript, so that CI and setup run it with any Node and no install). */
export declare const NODE_LTS: Readonly<Record<'22' | '24', string>>;
export declare const BUNDLED_NPM: Readonly<Record<string, string>>;
export declare function cacheDir(): string;
export declare function packTarball(spec: string, into?: string): string;
export declare function nodeRelease(version: string): string;
export declare function nodeBinary(line: '22' | '24' | string): string;
