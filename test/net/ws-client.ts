// A minimal RFC 6455 client over a raw socket for the edge tests: text frames, close codes, and a reader that can stop reading.

import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface WsClose {
  readonly code: number;
  readonly reason: string;
  /** True if the server sent a close frame; false if the TCP connection just ended (1006). */
  readonly clean: boolean;
}

/** A WebSocket client that records what arrives; pause() stops reading from the socket. */
export class TestWebSocket {
  readonly messages: string[] = [];
  closed: WsClose | undefined;
  private buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('close', () => {
      if (this.closed === undefined) this.closed = { code: 1006, reason: '', clean: false };
    });
    socket.on('error', () => {});
  }

  /** Connects and completes the upgrade; rejects with the HTTP status line if refused. */
  static open(port: number, path: string): Promise<TestWebSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const key = randomBytes(16).toString('base64');
      let head = Buffer.alloc(0);
      const onData = (data: Buffer) => {
        head = Buffer.concat([head, data]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const status = head.subarray(0, head.indexOf('\r\n')).toString();
        if (!status.includes(' 101 ')) {
          socket.destroy();
          reject(new Error(`upgrade refused: ${status} ${head.subarray(end + 4).toString()}`));
          return;
        }
        const client = new TestWebSocket(socket);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) client.onData(rest);
        resolve(client);
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  sendText(text: string): void {
    this.sendFrame(0x1, Buffer.from(text));
  }

  /** A text frame carrying exactly these bytes, UTF-8 or not. */
  sendTextBytes(bytes: Uint8Array): void {
    this.sendFrame(0x1, Buffer.from(bytes));
  }

  sendBinary(bytes: Uint8Array): void {
    this.sendFrame(0x2, Buffer.from(bytes));
  }

  /** Stops reading: the kernel buffers fill and the server's writes back up. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private sendFrame(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    let header: Buffer;
    if (payload.length < 126) {
      header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
    } else if (payload.length < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode;
      header[1] = 0x80 | 126;
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x80 | opcode;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    const masked = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ mask[i & 3]!;
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  private onData(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    for (;;) {
      if (this.buffer.length < 2) return;
      const fin = (this.buffer[0]! & 0x80) !== 0;
      const opcode = this.buffer[0]! & 0x0f;
      let length = this.buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) return;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + length) return;
      const payload = this.buffer.subarray(offset, offset + length);
      this.buffer = this.buffer.subarray(offset + length);
      this.onFrame(fin, opcode, Buffer.from(payload));
    }
  }

  private onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      this.closed = { code, reason: payload.subarray(2).toString(), clean: true };
      this.socket.end();
      return;
    }
    if (opcode === 0x9) {
      this.sendFrame(0xa, payload);
      return;
    }
    if (opcode === 0xa) return;
    this.fragments.push(payload);
    if (!fin) return;
    this.messages.push(Buffer.concat(this.fragments).toString());
    this.fragments = [];
  }
}

/** Sends raw bytes as an HTTP request and resolves with the status code and body of the answer. */
export function rawHttp(
  port: number,
  request: string | Buffer,
  { thenWrite }: { thenWrite?: (socket: Socket) => void } = {},
): Promise<{ status: number; body: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      const text = received.toString();
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /content-length: (\d+)/i.exec(text.slice(0, end));
      const body = text.slice(end + 4);
      if (length !== null && Buffer.byteLength(body) < Number(length[1])) return;
      settled = true;
      resolve({ status: Number(text.slice(9, 12)), body, closed });
      socket.destroy();
    };
    socket.on('data', (data: Buffer) => {
      received = Buffer.concat([received, data]);
      finish(false);
    });
    socket.on('close', () => {
      finish(true);
      if (!settled)
        reject(new Error(`connection closed after ${received.length} bytes: ${received.toString()}`));
    });
    socket.on('error', () => {});
    socket.write(request);
    thenWrite?.(socket);
  });
}
