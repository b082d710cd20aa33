import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.trading";
export declare const protobufFileName = "proto/trading/signals.proto";
/** Trading signals produced by strategies and ML models, consumed by the trading engine. */
export declare enum SignalAction {
    SIGNAL_ACTION_UNSPECIFIED = 0,
    SIGNAL_ACTION_BUY = 1,
    SIGNAL_ACTION_SELL = 2,
    SIGNAL_ACTION_HOLD = 3,
    SIGNAL_ACTION_CLOSE = 4,
    UNRECOGNIZED = -1
}
export declare function signalActionFromJSON(object: any): SignalAction;
export declare function signalActionToJSON(object: SignalAction): string;
export interface TradingSignal {
    signalId: string;
    symbol: string;
    action: SignalAction;
    /** 0..1 */
    confidence: number;
    entryPrice: number;
    stopLoss: number;
    takeProfit: number;
    /** e.g. "M1", "H1" */
    timeframe: string;
    strategyId: string;
    modelVersion: string;
    /** Unix ms */
    generatedAt: string;
    /** Unix ms; 0 = no expiry */
    expiresAt: string;
    userId: string;
    tenantId: string;
    /** the inputs that justified the signal */
    indicators: {
        [key: string]: number;
    };
    reason: string;
}
export interface TradingSignal_IndicatorsEntry {
    key: string;
    value: number;
}
export interface SignalBatch {
    signals: TradingSignal[];
    batchTimestamp: string;
}
export declare const TradingSignal: MessageFns<TradingSignal>;
export declare const TradingSignal_IndicatorsEntry: MessageFns<TradingSignal_IndicatorsEntry>;
export declare const SignalBatch: MessageFns<SignalBatch>;
type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;
export type DeepPartial<T> = T extends Builtin ? T : T extends globalThis.Array<infer U> ? globalThis.Array<DeepPartial<U>> : T extends ReadonlyArray<infer U> ? ReadonlyArray<DeepPartial<U>> : T extends {} ? {
    [K in keyof T]?: DeepPartial<T[K]>;
} : Partial<T>;
type KeysOfUnion<T> = T extends T ? keyof T : never;
export type Exact<P, I extends P> = P extends Builtin ? P : P & {
    [K in keyof P]: Exact<P[K], I[K]>;
} & {
    [K in Exclude<keyof I, KeysOfUnion<P>>]: never;
};
export interface MessageFns<T> {
    encode(message: T, writer?: BinaryWriter): BinaryWriter;
    decode(input: BinaryReader | Uint8Array, length?: number): T;
    fromJSON(object: any): T;
    toJSON(message: T): unknown;
    create<I extends Exact<DeepPartial<T>, I>>(base?: I): T;
    fromPartial<I extends Exact<DeepPartial<T>, I>>(object: I): T;
}
export {};
